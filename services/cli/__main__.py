"""`python -m cli` runs the same command line as the installed `chuhai` script."""

from cli.main import app

app(prog_name="chuhai")
