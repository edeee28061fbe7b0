"""Inbound report samples, written for these tests in each format's documented shape."""

from __future__ import annotations


def crlf(text: str) -> bytes:
    return text.replace("\n", "\r\n").encode()


def dsn(recipient_blocks: str, *, boundary: str = "B0UND") -> bytes:
    return crlf(
        f"""Return-Path: <>
From: MAILER-DAEMON@mx.remote.example (Mail Delivery System)
To: bounces+0abc-1-2-xyz@app.example
Subject: Undelivered Mail Returned to Sender
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status;
\tboundary="{boundary}"

--{boundary}
Content-Type: text/plain; charset=us-ascii

This is the mail system at host mx.remote.example.

<nobody@remote.example>: host inbox.remote.example[192.0.2.7] said: 550 5.1.1
    <nobody@remote.example>: Recipient address rejected: User unknown (in reply
    to RCPT TO command)

--{boundary}
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.remote.example
X-Postfix-Queue-ID: 4Xyz
Original-Envelope-Id: ENV-42
Arrival-Date: Fri,  4 Dec 2026 22:00:00 +0000 (UTC)

{recipient_blocks}
--{boundary}
Content-Type: text/rfc822-headers

From: App <noreply@app.example>
To: nobody@remote.example
Subject: Welcome
Message-ID: <welcome.1@app.example>

--{boundary}--
"""
    )


UNKNOWN_USER_BLOCK = """Final-Recipient: rfc822; nobody@Remote.Example
Original-Recipient: rfc822;nobody@remote.example
Action: failed
Status: 5.1.1
Remote-MTA: dns; inbox.remote.example
Diagnostic-Code: smtp; 550 5.1.1 <nobody@remote.example>: Recipient address
    rejected: User unknown
"""

MAILBOX_FULL_BLOCK = """Final-Recipient: rfc822; full@remote.example
Action: failed
Status: 5.2.2
Diagnostic-Code: smtp; 552 5.2.2 Mailbox full
"""

DELAYED_BLOCK = """Final-Recipient: rfc822; slow@remote.example
Action: delayed
Status: 4.4.1
Diagnostic-Code: X-Postfix; connect to slow.example[192.0.2.9]:25: Connection refused
"""

ARF = crlf(
    """From: feedback@fbl.provider.example
To: abuse@app.example
Subject: FW: Welcome
MIME-Version: 1.0
Content-Type: multipart/report; report-type=feedback-report; boundary="arf"

--arf
Content-Type: text/plain

This is an email abuse report for an email message received from IP 192.0.2.1.

--arf
Content-Type: message/feedback-report

Feedback-Type: abuse
User-Agent: ProviderFBL/1.0
Version: 1
Original-Mail-From: <bounces+0abc-1-2-xyz@app.example>
Original-Rcpt-To: <reader@provider.example>
Arrival-Date: Fri, 4 Dec 2026 21:00:00 +0000
Source-IP: 192.0.2.1
Reported-Domain: app.example

--arf
Content-Type: message/rfc822

Return-Path: <bounces+0abc-1-2-xyz@app.example>
From: App <noreply@app.example>
To: reader@provider.example
Subject: Welcome
Message-ID: <welcome.2@app.example>

Hello
--arf--
"""
)

ARF_REDACTED = ARF.replace(b"Original-Rcpt-To: <reader@provider.example>\r\n", b"").replace(
    b"To: reader@provider.example", b"To: redacted"
)

EXCHANGE = crlf(
    """From: postmaster@corp.example
To: noreply@app.example
Subject: Undeliverable: Welcome
Content-Type: text/plain; charset=utf-8

Delivery has failed to these recipients or groups:

Gone Person (gone@corp.example)
The e-mail address you entered couldn't be found. Please check the recipient's e-mail
address and try to resend the message.

Diagnostic information for administrators:

Generating server: EXCH01.corp.example

gone@corp.example
#550 5.1.1 RESOLVER.ADR.RecipNotFound; not found ##

Original message headers:

Message-ID: <welcome.3@app.example>
To: gone@corp.example
"""
)

GMAIL = crlf(
    """From: Mail Delivery Subsystem <mailer-daemon@googlemail.com>
To: noreply@app.example
Subject: Delivery Status Notification (Failure)
Content-Type: text/plain; charset=utf-8

** Address not found **

Your message wasn't delivered to missing.person@gmail.example because the address
couldn't be found, or is unable to receive mail.

The response from the remote server was:
550 5.1.1 The email account that you tried to reach does not exist.

----- Original message -----

Message-ID: <welcome.4@app.example>
To: missing.person@gmail.example
"""
)

QMAIL = crlf(
    """From: MAILER-DAEMON@qmail.example
To: noreply@app.example
Subject: failure notice

Hi. This is the qmail-send program at qmail.example.
I'm afraid I wasn't able to deliver your message to the following addresses.
This is a permanent error; I've given up. Sorry it didn't work out.

<nouser@qmail.example>:
Sorry, no mailbox here by that name. (#5.1.1)

<quota@qmail.example>:
The users mailfolder is over the allowed quota (size). (#5.2.2)

--- Below this line is a copy of the message.

Return-Path: <bounces+x@app.example>
To: other@qmail.example
Message-ID: <welcome.5@app.example>
"""
)

EXIM = crlf(
    """From: Mail Delivery System <Mailer-Daemon@exim.example>
To: noreply@app.example
Subject: Mail delivery failed: returning message to sender
Auto-Submitted: auto-replied

This message was created automatically by mail delivery software.

A message that you sent could not be delivered to one or more of its
recipients. This is a permanent error. The following address(es) failed:

  dead@exim.example
    host mx.exim.example [192.0.2.20]
    SMTP error from remote mail server after RCPT TO:<dead@exim.example>:
    550 5.1.1 <dead@exim.example>: Recipient address rejected

------ This is a copy of the message, including all the headers. ------

Message-ID: <welcome.6@app.example>
To: someone.else@exim.example
"""
)

POSTFIX_TEXT = crlf(
    """From: MAILER-DAEMON@pf.example (Mail Delivery System)
To: noreply@app.example
Subject: Undelivered Mail Returned to Sender

This is the mail system at host pf.example.

I'm sorry to have to inform you that your message could not
be delivered to one or more recipients.

<ghost@pf.example>: host mail.pf.example[192.0.2.30] said: 550 5.1.1
    <ghost@pf.example>: Recipient address rejected: User unknown in local
    recipient table (in reply to RCPT TO command)
"""
)

AUTO_REPLY = crlf(
    """From: Reader <reader@provider.example>
To: bounces+0abc-1-2-xyz@app.example
Subject: Automatic reply: Welcome
Auto-Submitted: auto-replied
In-Reply-To: <welcome.7@app.example>

I am out of the office until Monday.
"""
)

OUT_OF_OFFICE_SUBJECT_ONLY = crlf(
    """From: reader@provider.example
To: noreply@app.example
Subject: Out of Office: Welcome

Back on Monday.
"""
)

PLAIN_MAIL = crlf(
    """From: someone@provider.example
To: postmaster@app.example
Subject: Question about my account

Hello, my delivery failed yesterday, can you help? 550 5.1.1 said the server.
"""
)
