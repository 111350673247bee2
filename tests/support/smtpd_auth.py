#!/usr/bin/env python3
"""Loopback SMTP server for tests: STARTTLS (required) + AUTH PLAIN/LOGIN + Maildir store.
usage: smtpd_auth.py HOST PORT MAILDIR CERT KEY USER PASS"""
import signal, ssl, sys, time, warnings
from aiosmtpd.controller import Controller
from aiosmtpd.handlers import Mailbox
from aiosmtpd.smtp import AuthResult, LoginPassword

host, port, maildir, cert, key, user, pw = sys.argv[1:8]
ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
ctx.load_cert_chain(cert, key)

def authenticator(server, session, envelope, mechanism, auth_data):
    ok = isinstance(auth_data, LoginPassword) and auth_data.login == user.encode() and auth_data.password == pw.encode()
    return AuthResult(success=ok, handled=False)  # handled=False => aiosmtpd replies 535 itself

c = Controller(Mailbox(maildir), hostname=host, port=int(port), tls_context=ctx,
               require_starttls=True, authenticator=authenticator, auth_required=True,
               auth_require_tls=True)
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))   # `kill PID` -> clean stop via finally
warnings.filterwarnings("ignore", category=DeprecationWarning)
c.start()
print(f"listening {host}:{port}", flush=True)
try:
    while True:
        time.sleep(3600)
except (KeyboardInterrupt, SystemExit):
    pass
finally:
    c.stop()
