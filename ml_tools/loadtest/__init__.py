"""Locust load tests for the multi-model endpoint (``locustfile.py``) and their traffic patterns."""
