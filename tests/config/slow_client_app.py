"""A WSGI app for tests/config/test_gunicorn.py: reads the whole body, answers its length."""


def app(environ, start_response):
    length = int(environ.get("CONTENT_LENGTH") or 0)
    try:
        body = environ["wsgi.input"].read(length) if length else b""
    except OSError:
        start_response("408 Request Timeout", [("Content-Type", "text/plain")])
        return [b"timeout"]
    answer = str(len(body)).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(answer)))])
    return [answer]
