"""Booth service: exporters, trade fairs and booth applications against the quota."""
