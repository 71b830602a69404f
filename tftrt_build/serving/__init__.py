"""A running TF Serving: clients, deploy, verify and bench (the commands live in serving_cli)."""
