"""Servers for tests/integration/test_lua_net.py, run inside the test's NetLab:

    lua_net_servers.py http  ADDR PORT [CERT KEY]   HTTP (HTTPS with CERT and KEY)
    lua_net_servers.py ws    ADDR PORT              a WebSocket echo (python3-websockets)
    lua_net_servers.py echo  ADDR PORT              a TCP echo

Each prints "READY" on stdout once it listens (the test waits for that line, not for a
time) and serves until it is killed. The HTTP routes:

    GET  /hello         200 "hello", X-Server: lab
    POST|PUT /echo      200 "METHOD|X-Test header|body"
    GET  /redir         302 to /hello
    GET  /away          302 to http://other.test:PORT/hello (a host the app may not reach)
    GET  /slow          answers after 30 s (the app times out first)
"""
import asyncio
import http.server
import socket
import socketserver
import ssl
import sys
import threading
import time


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def reply(self, code, body=b"", headers=()):
        self.send_response(code)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        port = self.server.server_address[1]
        if self.path == "/hello":
            self.reply(200, b"hello", [("X-Server", "lab")])
        elif self.path == "/redir":
            self.reply(302, headers=[("Location", "/hello")])
        elif self.path == "/away":
            self.reply(302, headers=[("Location", f"http://other.test:{port}/hello")])
        elif self.path == "/slow":
            time.sleep(30)
            self.reply(200, b"late")
        else:
            self.reply(404)

    def echo(self):
        n = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(n)
        out = f"{self.command}|{self.headers.get('X-Test', '')}|".encode() + body
        self.reply(200, out)

    do_POST = echo
    do_PUT = echo


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, addr, handler):
        self.address_family = socket.AF_INET6 if ":" in addr[0] else socket.AF_INET
        super().__init__(addr, handler)


def serve_http(addr, port, cert=None, key=None):
    srv = Server((addr, port), Handler)
    if cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    print("READY", flush=True)
    srv.serve_forever()


def serve_echo(addr, port):
    s = socket.socket(socket.AF_INET6 if ":" in addr else socket.AF_INET)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, port))
    s.listen(16)
    print("READY", flush=True)

    def one(c):
        with c:
            while True:
                b = c.recv(65536)
                if not b:
                    return
                c.sendall(b)

    while True:
        c, _ = s.accept()
        threading.Thread(target=one, args=(c,), daemon=True).start()


def serve_ws(addr, port):
    import websockets

    async def echo(ws, path=None):
        async for m in ws:
            await ws.send(m)

    async def main():
        async with websockets.serve(echo, addr, port, max_size=4 << 20):
            print("READY", flush=True)
            await asyncio.Future()

    asyncio.run(main())


if __name__ == "__main__":
    kind, addr, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    if kind == "http":
        serve_http(addr, port, *sys.argv[4:6])
    elif kind == "echo":
        serve_echo(addr, port)
    elif kind == "ws":
        serve_ws(addr, port)
    else:
        sys.exit(f"unknown server {kind}")
