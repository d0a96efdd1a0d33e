"""Grafana dashboards, Grafana-managed alert rules, and the Prometheus / Alertmanager configuration, as code.

``gateledger dashboards build`` regenerates ``dashboards/generated/*.json`` and the generated
provisioning files from the Python definitions here; ``check`` proves the committed files are what
the code builds; ``push`` installs them into a running Grafana through its HTTP API.
"""
