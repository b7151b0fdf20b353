"""The REST gateway (`msq-rest-gateway`): MindSpore Serving REST and V2 REST in a Falcon ASGI
app under gunicorn."""
