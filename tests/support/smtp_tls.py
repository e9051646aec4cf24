"""An SMTP server for the alert tests that insists on TLS and then AUTH before it takes mail.

usage: smtp_tls.py PORT CERT KEY MAILDIR USER MODE   (the password comes from $SMTP_TEST_PASSWORD)
  MODE starttls: plain connection that must be upgraded with STARTTLS (submission, port 587)
  MODE implicit: TLS from the first byte (SMTPS, port 465)
"""
import os
import ssl
import sys
import threading

from aiosmtpd.controller import Controller
from aiosmtpd.handlers import Mailbox
from aiosmtpd.smtp import AuthResult, LoginPassword

port, cert, key, maildir, user, mode = sys.argv[1:7]
password = os.environ["SMTP_TEST_PASSWORD"].encode()

tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
tls.load_cert_chain(cert, key)


def authenticate(server, session, envelope, mechanism, data):
    ok = isinstance(data, LoginPassword) and data.login == user.encode() and data.password == password
    return AuthResult(success=ok, handled=False)  # False: the server answers 535 itself


if mode == "starttls":
    protection = {"tls_context": tls, "require_starttls": True, "auth_require_tls": True}
elif mode == "implicit":
    # The whole connection is TLS; aiosmtpd only counts STARTTLS as TLS for its AUTH check, so switch that off.
    protection = {"ssl_context": tls, "auth_require_tls": False}
else:
    sys.exit(f"unknown mode {mode!r}")

controller = Controller(
    Mailbox(maildir),
    hostname="127.0.0.1",
    port=int(port),
    authenticator=authenticate,
    auth_required=True,
    ready_timeout=60,  # a loaded CI machine may take longer than the default 5 s
    **protection,
)
controller.start()
print("ready", flush=True)
threading.Event().wait()  # until the test kills it
