"""An SMTP server for the alert test that insists on STARTTLS and then AUTH before it takes mail.

usage: smtp_starttls.py PORT CERT KEY MAILDIR USER   (the password comes from $SMTP_TEST_PASSWORD)
"""
import os
import ssl
import sys
import threading

from aiosmtpd.controller import Controller
from aiosmtpd.handlers import Mailbox
from aiosmtpd.smtp import AuthResult, LoginPassword

port, cert, key, maildir, user = sys.argv[1:6]
password = os.environ["SMTP_TEST_PASSWORD"].encode()

tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
tls.load_cert_chain(cert, key)


def authenticate(server, session, envelope, mechanism, data):
    ok = isinstance(data, LoginPassword) and data.login == user.encode() and data.password == password
    return AuthResult(success=ok, handled=False)  # False: the server answers 535 itself


controller = Controller(
    Mailbox(maildir),
    hostname="127.0.0.1",
    port=int(port),
    tls_context=tls,
    require_starttls=True,
    authenticator=authenticate,
    auth_required=True,
    ready_timeout=60,  # a loaded CI machine may take longer than the default 5 s
)
controller.start()
print("ready", flush=True)
threading.Event().wait()  # until the test kills it
