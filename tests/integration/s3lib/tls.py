"""TLS in front of a loopback server, with a throwaway CA, for tests of the CA bundle handling.

    certs = make_certs(tmpdir)            # {"ca": ca.pem, "cert": server.pem, "key": server.key}
    with TlsRelay(target_port, certs) as tls:
        tls.endpoint                      # https://127.0.0.1:PORT (certificate for IP 127.0.0.1)

make_certs uses the openssl command line (EC P-256 keys, valid 2 days). TlsRelay terminates TLS and
relays bytes both ways to 127.0.0.1:target_port, one thread pair per connection."""
import os
import socket
import ssl
import subprocess
import threading


def make_certs(d):
    def ossl(*args):
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=d)

    with open(os.path.join(d, "san.cnf"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n")
    ossl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "ca.key")
    ossl("req", "-x509", "-new", "-key", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=s3vec s3 test CA",
         "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    ossl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "server.key")
    ossl("req", "-new", "-key", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1")
    ossl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-days", "2",
         "-out", "server.pem", "-extfile", "san.cnf")
    return {k: os.path.join(d, v) for k, v in (("ca", "ca.pem"), ("cert", "server.pem"), ("key", "server.key"))}


class TlsRelay:
    def __init__(self, target_port, certs):
        self.target_port = target_port
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(certs["cert"], certs["key"])
        self.sock = None
        self.handshakes = 0

    @property
    def port(self):
        return self.sock.getsockname()[1]

    @property
    def endpoint(self):
        return f"https://127.0.0.1:{self.port}"

    def start(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def _accept(self):
        while True:
            try:
                raw, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(raw,), daemon=True).start()

    def _serve(self, raw):
        try:
            tls = self.ctx.wrap_socket(raw, server_side=True)
            self.handshakes += 1
            up = socket.create_connection(("127.0.0.1", self.target_port))
        except (OSError, ssl.SSLError):
            raw.close()
            return

        def pipe(a, b):
            try:
                while True:
                    data = a.recv(65536)
                    if not data:
                        break
                    b.sendall(data)
            except OSError:
                pass
            finally:
                for s in (a, b):
                    try:
                        s.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass

        t = threading.Thread(target=pipe, args=(up, tls), daemon=True)
        t.start()
        pipe(tls, up)
        t.join(5)
        tls.close()
        up.close()

    def stop(self):
        if self.sock:
            self.sock.close()
            self.sock = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
