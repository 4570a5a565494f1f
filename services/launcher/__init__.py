"""The platform on one machine: `chuhai-platform` (cli), the embedded Kafka broker and
MongoDB server it starts (embedded), and the demo it plays. It builds on the services
and the runtime; nothing in the runtime imports it."""
