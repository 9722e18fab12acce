"""`make demo`: fill a running platform with a directory of bodies across Jiangsu, grassroots units and a few
minutes of realistic reports, through the services' public HTTP APIs only, and print what the bodies receive.

- `stack.py`     where the running services are (harness ports, admin token)
- `directory.py` the bodies (POST /v1/bodies) and units (POST /v1/units), idempotent by name and region
- `receiver.py`  the local webhook receiver every body's channel points to; it verifies `X-Signature`
- `simulator.py` realistic reports (POST /v1/reports) from the units' keys
- `__main__.py`  the command line: `python -m demo --minutes 3 --rate 2`
"""
