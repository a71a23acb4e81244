"""`mmagent serve`: an OpenAI-compatible HTTP API over one resident model (needs ``pip install 'mmagent[serve]'``).

app.py (the FastAPI factory and OpenAI routes), flows_api.py (the flows as event streams), batching.py
(the request queue that decodes concurrent requests together, mixed adapters per batch), limits.py
(settings, auth, body/image/token/time limits), metrics.py (Prometheus), openai_schema.py (the wire
format), runner.py (a server in a background thread). Nothing heavy is imported until a server is built.
"""
