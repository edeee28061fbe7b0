"""Writes the explain corpus: postfix-classic.log, postfix-rfc3339.log, mailwright.log.

    python tests/data/explain/make_corpus.py

Each entry below is one failure: the cause it must get, the reply a receiver gives
(written for mailwright from the providers' published reply texts and RFC status
codes; IPs are documentation addresses), and the form Postfix logs it in (``said``,
``refused to talk to me``, ``connect to``, ``lost connection``, DNS, local).  The same
entries are written as Postfix lines in both syslog timestamp styles and as
mailwright's own log lines (docs/log-format.md).  The output is committed; rerun this
after adding an entry (queue IDs are seeded, so the files are reproducible).
"""

# ruff: noqa: E501
from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

random.seed(7)
G = "gmail-smtp-in.l.google.com"
MS = "example-net.mail.protection.outlook.com"
Y = "mta5.am0.yahoodns.net"
X = "mx00.emig.gmx.net"
W = "mx-ha03.web.de"
M = "mx.example.net"
# (cause, expect-extra, status, dsn, rcpt, host, ip, form, reply, stage)
E = []


def add(cause, status, dsn, rcpt, host, ip, form, reply, stage="RCPT TO", extra=""):
    E.append((cause, extra, status, dsn, rcpt, host, ip, form, reply, stage))


# reverse-dns
add(
    "reverse-dns",
    "bounced",
    "5.7.25",
    "alice@gmail.com",
    G,
    "142.250.102.27",
    "said",
    "550-5.7.25 [192.0.2.10] The IP address sending this message does not have a 550-5.7.25 PTR record setup, or the corresponding forward DNS entry does not 550-5.7.25 point to the sending IP. As a policy, Gmail does not accept messages 550-5.7.25 from IPs with missing PTR records. For more information, go to 550 5.7.25  https://support.google.com/mail/answer/81126#ip-rdns 41be03b00d2f7-7ea1c2e5a81si1234567a12.321 - gsmtp",
    "end of DATA",
    "check=ptr",
)
add(
    "reverse-dns",
    "bounced",
    "5.7.1",
    "bob@gmail.com",
    G,
    "2607:f8b0:4023:c0b::1b",
    "said",
    "550-5.7.1 [2001:db8::10] Our system has detected that this message does 550-5.7.1 not meet IPv6 sending guidelines regarding PTR records and 550-5.7.1 authentication. Please review 550-5.7.1  https://support.google.com/mail/?p=IPv6AuthError for more information 550 5.7.1 . a640c23a62f3a-a9a0c2f1e8esi98765432a66.412 - gsmtp",
    "end of DATA",
    "check=fcrdns",
)
add(
    "reverse-dns",
    "bounced",
    "5.0.0",
    "carol@gmx.net",
    X,
    "212.227.15.15",
    "greeting",
    "554-gmx.net (mxgmx015) Nemesis ESMTP Service not available 554-No SMTP service 554-Bad DNS PTR resource record. 554 For explanation visit https://postmaster.gmx.net/en/case?c=r0601&i=ip&v=192.0.2.10&r=0MdCxT-1tZ7pA3nBq-00PnHm",
    extra="check=fcrdns",
)
add(
    "reverse-dns",
    "deferred",
    "4.7.25",
    "dave@example.net",
    M,
    "203.0.113.5",
    "said",
    "450 4.7.25 Client host rejected: cannot find your hostname, [192.0.2.10]",
    extra="check=ptr",
)
add(
    "reverse-dns",
    "deferred",
    "4.7.1",
    "erin@example.org",
    "mail.example.org",
    "198.51.100.25",
    "said",
    "450 4.7.1 Client host rejected: cannot find your reverse hostname, [192.0.2.10]",
    extra="check=ptr",
)
add(
    "reverse-dns",
    "bounced",
    "5.5.2",
    "frank@example.com",
    "mx1.example.com",
    "198.51.100.40",
    "said",
    "504 5.5.2 <localhost>: Helo command rejected: need fully-qualified hostname",
    extra="check=ptr-helo",
)
add(
    "reverse-dns",
    "bounced",
    "5.7.1",
    "grace@example.org",
    "mx.example.org",
    "2001:db8::25",
    "said",
    "550 5.7.1 Reverse DNS lookup failed for host 2001:db8::10",
    "MAIL FROM",
    "check=fcrdns",
)

# blocklisted
add(
    "blocklisted",
    "bounced",
    "5.7.1",
    "heidi@example.net",
    M,
    "203.0.113.5",
    "said",
    "554 5.7.1 Service unavailable; Client host [192.0.2.10] blocked using zen.spamhaus.org; https://www.spamhaus.org/query/ip/192.0.2.10",
    extra="list=zen.spamhaus.org check=dnsbl:zen.spamhaus.org",
)
add(
    "blocklisted",
    "bounced",
    "5.7.1",
    "ivan@example.com",
    "mx1.example.com",
    "198.51.100.40",
    "said",
    "554 5.7.1 Service unavailable; Client host [192.0.2.10] blocked using b.barracudacentral.org; http://www.barracudanetworks.com/reputation/?pr=1&ip=192.0.2.10",
    extra="list=b.barracudacentral.org check=dnsbl:b.barracudacentral.org",
)
add(
    "blocklisted",
    "bounced",
    "5.7.1",
    "judy@example.org",
    "mx.example.org",
    "2001:db8::25",
    "said",
    "554 5.7.1 Service unavailable; Client host [2001:db8::10] blocked using bl.spamcop.net; Blocked - see https://www.spamcop.net/bl.shtml?2001:db8::10",
    extra="list=bl.spamcop.net check=dnsbl:bl.spamcop.net",
)
add(
    "blocklisted",
    "bounced",
    "5.7.1",
    "mallory@outlook.com",
    "outlook-com.olc.protection.outlook.com",
    "52.101.42.1",
    "said",
    "550 5.7.1 Unfortunately, messages from [192.0.2.10] weren't sent. Please contact your Internet service provider since part of their network is on our block list (S3140). You can also refer your provider to http://mail.live.com/mail/troubleshooting.aspx#errors. [AM4PEPF00027A5C.eurprd04.prod.outlook.com 2026-11-24T19:00:00.000Z 08DD0C7C1A2B3C4D]",
    extra="list=Microsoft (S3140)",
)
add(
    "blocklisted",
    "bounced",
    "5.7.1",
    "niaj@hotmail.com",
    "hotmail-com.olc.protection.outlook.com",
    "52.101.42.2",
    "said",
    "550 5.7.1 Unfortunately, messages from [192.0.2.10] weren't sent. Please contact your Internet service provider since part of their network is on our block list (S3150). You can also refer your provider to http://mail.live.com/mail/troubleshooting.aspx#errors. [DB5PEPF00014B9E.eurprd02.prod.outlook.com 2026-11-24T19:00:00.000Z 08DD0C7C1A2B3C4E]",
    extra="list=Microsoft (S3150)",
)
add(
    "blocklisted",
    "bounced",
    "5.7.606",
    "olivia@example-net.com",
    MS,
    "52.101.68.3",
    "said",
    "550 5.7.606 Access denied, banned sending IP [192.0.2.10]. To request removal from this list please visit https://sender.office.com/ and follow the directions. For more information please go to http://go.microsoft.com/fwlink/?LinkID=526655 AS(1430) [VI1EUR04FT012.eop-eur04.prod.protection.outlook.com 2026-11-24T19:00:00.000Z 08DD0C7C1A2B3C4F]",
    extra="list=Microsoft",
)
add(
    "blocklisted",
    "bounced",
    "5.7.511",
    "peggy@example-net.com",
    MS,
    "52.101.68.3",
    "said",
    "550 5.7.511 Access denied, banned sender[192.0.2.10]. To request removal from this list please forward this message to delist@microsoft.com. For more information please go to http://go.microsoft.com/fwlink/?LinkId=526653. AS(1410) [AM6EUR05FT034.eop-eur05.prod.protection.outlook.com]",
    "MAIL FROM",
    "list=Microsoft",
)
add(
    "blocklisted",
    "bounced",
    "5.7.1",
    "rupert@example-net.com",
    MS,
    "52.101.68.3",
    "said",
    "550 5.7.1 Service unavailable, Client host [192.0.2.10] blocked using Spamhaus. To request removal from this list see https://www.spamhaus.org/query/ip/192.0.2.10 (AS3130). [VI1EUR04FT055.eop-eur04.prod.protection.outlook.com 2026-11-24T19:00:00.000Z 08DD0C7C1A2B3C50]",
    extra="list=Spamhaus check=dnsbl:zen.spamhaus.org",
)
add(
    "blocklisted",
    "bounced",
    "5.7.1",
    "sybil@yahoo.com",
    Y,
    "98.136.96.75",
    "greeting",
    "553 5.7.1 [BL21] Connections will not be accepted from 192.0.2.10, because the ip is in Spamhaus's list; see https://postmaster.yahooinc.com/error-codes",
    extra="list=Spamhaus check=dnsbl:zen.spamhaus.org",
)
add(
    "blocklisted",
    "bounced",
    "5.0.0",
    "trent@gmx.de",
    X,
    "212.227.17.5",
    "greeting",
    "554-gmx.net (mxgmx104) Nemesis ESMTP Service not available 554-No SMTP service 554-IP address is block listed. 554 For explanation visit https://postmaster.gmx.net/en/case?c=r0201&i=ip&v=192.0.2.10&r=1MNcgj-1ue23t3pyV-00S2YR",
    extra="list=GMX/WEB.DE",
)
add(
    "blocklisted",
    "bounced",
    "5.0.0",
    "victor@web.de",
    W,
    "212.227.15.3",
    "said",
    "550 Email blocked",
    "MAIL FROM",
    "check=dnsbl:*",
)
add(
    "blocklisted",
    "bounced",
    "5.7.1",
    "walter@example.net",
    M,
    "2001:db8::5",
    "said",
    "550 5.7.1 Service unavailable; client [2001:db8::10] blocked using dnsbl-1.uceprotect.net",
    extra="list=dnsbl-1.uceprotect.net check=dnsbl:dnsbl-1.uceprotect.net",
)
add(
    "blocklisted",
    "bounced",
    "5.7.1",
    "xena@example.com",
    "mx1.example.com",
    "198.51.100.40",
    "said",
    "554 5.7.1 <app@example.com>: Sender address rejected: domain example.com listed on dbl.spamhaus.org",
    "RCPT TO",
    "list=dbl.spamhaus.org check=dbl:dbl.spamhaus.org",
)

add(
    "blocklisted",
    "bounced",
    "5.7.1",
    "amy@icloud.com",
    "mx01.mail.icloud.com",
    "17.57.154.6",
    "said",
    "554 5.7.1 Blocked - see https://ipcheck.proofpoint.com/?ip=192.0.2.10",
    "MAIL FROM",
    "list=Proofpoint check=dnsbl:*",
)
add(
    "blocklisted",
    "bounced",
    "5.0.0",
    "bo@comcast.net",
    "mx1a1.comcast.net",
    "96.114.157.80",
    "greeting",
    "554 resimta-po-12v.sys.comcast.net resimta-po-12v.sys.comcast.net 192.0.2.10 found on one or more DNSBLs, see http://postmaster.comcast.net/smtp-error-codes.php#BL000001",
    extra="check=dnsbl:*",
)
# dmarc
add(
    "dmarc",
    "bounced",
    "5.7.26",
    "yvonne@gmail.com",
    G,
    "142.250.102.27",
    "said",
    "550-5.7.26 Unauthenticated email from example.com is not accepted due to 550-5.7.26 domain's DMARC policy. Please contact the administrator of 550-5.7.26 example.com domain if this was a legitimate mail. To learn about the 550-5.7.26 DMARC initiative, go to 550 5.7.26  https://support.google.com/mail/?p=DmarcRejection 5b1f17b1804b1-43167a9c13esi123456f5.299 - gsmtp",
    "end of DATA",
)
add(
    "dmarc",
    "bounced",
    "5.7.26",
    "zoe@gmail.com",
    G,
    "2607:f8b0:4023:c0b::1a",
    "said",
    "550-5.7.26 This mail has been blocked because the sender is 550-5.7.26 unauthenticated. Gmail requires all senders to authenticate with 550-5.7.26 either SPF or DKIM. 550-5.7.26  550-5.7.26  Authentication results: 550-5.7.26  DKIM = did not pass 550-5.7.26  SPF [example.com] with ip: [2001:db8::10] = did not pass 550-5.7.26  550-5.7.26  For instructions on setting up authentication, go to 550 5.7.26  https://support.google.com/mail/answer/81126#authentication d2e1a72fcca58-71e5a5f1b0bsi1234567b3a.155 - gsmtp",
    "end of DATA",
)
add(
    "dmarc",
    "deferred",
    "4.7.32",
    "amy@gmail.com",
    G,
    "142.250.102.26",
    "said",
    "421-4.7.32 Your email has been rate limited because the From: header (RFC5322) in 421-4.7.32 this message isn't aligned with either the authenticated SPF or DKIM 421-4.7.32 organizational domain. To learn more about DMARC alignment, visit 421-4.7.32  https://support.google.com/a?p=dmarc-alignment To learn more about 421-4.7.32 Gmail requirements for bulk senders, visit 421 4.7.32  https://support.google.com/a?p=sender-guidelines. 98e67ed59e1d1-2e2f0a1c9c1si123456a91.300 - gsmtp",
    "end of DATA",
)
add(
    "dmarc",
    "deferred",
    "4.7.40",
    "ben@gmail.com",
    G,
    "142.250.102.26",
    "said",
    "421-4.7.40 Your email has been rate limited because DMARC policy is not enabled for 421-4.7.40 the sending domain. To learn more about Gmail requirements for bulk 421 4.7.40 senders, visit  https://support.google.com/a?p=sender-guidelines. 98e67ed59e1d1-2e2f0a1c9c1si654321a92.301 - gsmtp",
    "end of DATA",
)
add(
    "dmarc",
    "bounced",
    "5.7.509",
    "cleo@example-net.com",
    MS,
    "52.101.68.3",
    "said",
    "550 5.7.509 Access denied, sending domain example.com does not pass DMARC verification and has a DMARC policy of reject. [AM4PEPF00027A6C.eurprd04.prod.outlook.com 2026-11-24T19:00:00.000Z 08DD0C7C1A2B3C51]",
    "end of DATA",
)
add(
    "dmarc",
    "bounced",
    "5.7.9",
    "dora@yahoo.com",
    Y,
    "67.195.204.72",
    "said",
    "550 5.7.9 This mail has been blocked because the sender is unauthenticated. Yahoo requires all senders to authenticate with either SPF or DKIM.",
    "end of DATA",
)
add(
    "dmarc",
    "bounced",
    "5.7.1",
    "eli@example.org",
    "mx.example.org",
    "198.51.100.25",
    "said",
    "550 5.7.1 rejected by DMARC policy for example.com",
    "end of DATA",
)

add(
    "dmarc",
    "bounced",
    "5.0.0",
    "fred@example-mimecast.com",
    "eu-smtp-inbound-1.mimecast.com",
    "195.130.217.211",
    "said",
    "550 Rejected by header based Anti-Spoofing policy: app@example.com - https://community.mimecast.com/docs/DOC-1369#550",
    "end of DATA",
    "check=dmarc-alignment",
)
# spf
add(
    "spf",
    "bounced",
    "5.7.27",
    "fay@gmail.com",
    G,
    "142.250.102.27",
    "said",
    "550-5.7.27 Your email has been blocked because SPF authentication didn't pass 550-5.7.27 for this message. Gmail requires all bulk email senders to 550-5.7.27 authenticate with SPF. For more information, go to 550 5.7.27  https://support.google.com/mail/answer/81126#authentication 4fb4d7f45d1cf-5c8c4a1b2c3si1234567a12.99 - gsmtp",
    "end of DATA",
    "check=spf-authorizes",
)
add(
    "spf",
    "deferred",
    "4.7.27",
    "gus@gmail.com",
    G,
    "142.250.102.27",
    "said",
    "421-4.7.27 Your email has been rate limited because SPF authentication didn't pass 421-4.7.27 for this message. Gmail requires all bulk email senders to 421-4.7.27 authenticate with SPF. For more information, go to 421 4.7.27  https://support.google.com/mail/answer/81126#authentication 4fb4d7f45d1cf-5c8c4a1b2c3si7654321a12.100 - gsmtp",
    "end of DATA",
)
add(
    "spf",
    "bounced",
    "5.7.23",
    "hal@gmail.com",
    G,
    "142.250.102.27",
    "said",
    "550-5.7.23 The message was rejected because of Sender Policy Framework violation. 550 5.7.23  https://support.google.com/a/answer/2466580 2adb3069b0e04-53a1c2d3e4fsi123456e87.512 - gsmtp",
    "end of DATA",
)
add(
    "spf",
    "bounced",
    "5.7.23",
    "ida@example-net.com",
    MS,
    "52.101.68.3",
    "said",
    "550 5.7.23 The message was rejected because of Sender Policy Framework violation -> A SPF record was found, but the sending IP is not in it [DB1PEPF000509F1.eurprd03.prod.outlook.com 2026-11-24T19:00:00.000Z 08DD0C7C1A2B3C52]",
    "end of DATA",
)
add(
    "spf",
    "bounced",
    "5.7.23",
    "jon@example.net",
    M,
    "203.0.113.5",
    "said",
    "550 5.7.23 <jon@example.net>: Recipient address rejected: Message rejected due to: SPF fail - not authorized. Please see http://www.open-spf.org/Why;id=app%40example.com;ip=192.0.2.10;r=<UNKNOWN>",
)
add(
    "spf",
    "bounced",
    "5.0.0",
    "kim@gmx.net",
    X,
    "212.227.15.15",
    "said",
    "550-Requested action not taken: mailbox unavailable 550-Reject due to SPF policy. The originating IP of the message is not permitted by the domain owner 550 For explanation visit https://postmaster.gmx.net/en/case?c=hi&i=ip&v=192.0.2.10&r=1MvJvX-1tFE7Y0hZV-00rWm3",
    "MAIL FROM",
)

# dkim
add(
    "dkim",
    "bounced",
    "5.7.30",
    "lea@gmail.com",
    G,
    "142.250.102.27",
    "said",
    "550-5.7.30 Your email has been blocked because DKIM authentication didn't pass 550-5.7.30 for this message. Gmail requires all bulk email senders to 550-5.7.30 authenticate with DKIM. For more information, go to 550 5.7.30  https://support.google.com/mail/answer/81126#authentication 3f1490d57ef6-e2b9c5f1a2bsi1234567276.412 - gsmtp",
    "end of DATA",
    "check=dkim-record:*",
)
add(
    "dkim",
    "deferred",
    "4.7.30",
    "max@gmail.com",
    G,
    "2607:f8b0:4023:c0b::1b",
    "said",
    "421-4.7.30 Your email has been rate limited because DKIM authentication didn't 421-4.7.30 pass for this message. Gmail requires all bulk email senders to 421-4.7.30 authenticate with DKIM. For more information, go to 421 4.7.30  https://support.google.com/mail/answer/81126#authentication 3f1490d57ef6-e2b9c5f1a2bsi7654321276.413 - gsmtp",
    "end of DATA",
)
add(
    "dkim",
    "bounced",
    "5.7.20",
    "ned@example.org",
    "mx.example.org",
    "198.51.100.25",
    "said",
    "550 5.7.20 No passing DKIM signature found",
    "end of DATA",
)
add(
    "dkim",
    "bounced",
    "5.7.1",
    "oda@example.com",
    "mx1.example.com",
    "198.51.100.40",
    "said",
    "550 5.7.1 DKIM signature verification failed: body hash did not verify",
    "end of DATA",
)

# sender-null-mx
add(
    "sender-null-mx",
    "bounced",
    "5.7.27",
    "pam@example.net",
    M,
    "203.0.113.5",
    "said",
    "550 5.7.27 <app@example.com>: Sender address rejected: Domain example.com does not accept mail (nullMX)",
    "MAIL FROM",
    "check=mx-null",
)
add(
    "sender-null-mx",
    "bounced",
    "5.7.27",
    "quin@example.org",
    "mx.example.org",
    "2001:db8::25",
    "said",
    "550 5.7.27 Sender address has null MX",
    "MAIL FROM",
)
add(
    "sender-null-mx",
    "bounced",
    "5.7.27",
    "ray@example.com",
    "mx1.example.com",
    "198.51.100.40",
    "said",
    "550 5.7.27 <noreply@example.com>: sender domain has a null MX (RFC 7505) and cannot receive replies",
    "MAIL FROM",
)

# sender-domain
add(
    "sender-domain",
    "deferred",
    "4.1.8",
    "sam@example.net",
    M,
    "203.0.113.5",
    "said",
    "450 4.1.8 <app@mail.internal>: Sender address rejected: Domain not found",
    extra="check=mx",
)
add(
    "sender-domain",
    "bounced",
    "5.1.8",
    "tia@example.org",
    "mx.example.org",
    "198.51.100.25",
    "said",
    "553 5.1.8 <app@localhost.localdomain>: Sender address rejected: Domain not found",
)
add(
    "sender-domain",
    "bounced",
    "5.0.0",
    "uma@example.com",
    "mx1.example.com",
    "198.51.100.40",
    "said",
    "550 Verification failed for <app@example.com> 550 Sender verify failed",
    "MAIL FROM",
)
add(
    "sender-domain",
    "bounced",
    "5.1.7",
    "val@example.net",
    M,
    "203.0.113.5",
    "said",
    "553 5.1.7 <app>: Sender address rejected: need fully-qualified address",
    "MAIL FROM",
)

# recipient-unknown
add(
    "recipient-unknown",
    "bounced",
    "5.1.1",
    "nosuchuser@gmail.com",
    G,
    "142.250.102.27",
    "said",
    "550-5.1.1 The email account that you tried to reach does not exist. Please try 550-5.1.1 double-checking the recipient's email address for typos or 550-5.1.1 unnecessary spaces. For more information, go to 550 5.1.1  https://support.google.com/mail/?p=NoSuchUser 5b1f17b1804b1-4316a1b2c3dsi123456f5.88 - gsmtp",
)
add(
    "recipient-unknown",
    "bounced",
    "5.1.1",
    "wes@example.net",
    M,
    "203.0.113.5",
    "said",
    "550 5.1.1 <wes@example.net>: Recipient address rejected: User unknown in virtual mailbox table",
)
add(
    "recipient-unknown",
    "bounced",
    "5.5.0",
    "xia@outlook.com",
    "outlook-com.olc.protection.outlook.com",
    "52.101.42.1",
    "said",
    "550 5.5.0 Requested action not taken: mailbox unavailable (S2017062302). [AM4PEPF00027A5C.eurprd04.prod.outlook.com 2026-11-24T19:00:00.000Z 08DD0C7C1A2B3C53]",
)
add(
    "recipient-unknown",
    "bounced",
    "5.4.1",
    "yul@example-net.com",
    MS,
    "2a01:111:f403:c200::1",
    "said",
    "550 5.4.1 Recipient address rejected: Access denied. For more information see https://aka.ms/EXOSmtpErrors [AM4PEPF00027A5D.eurprd04.prod.outlook.com 2026-11-24T19:00:00.000Z 08DD0C7C1A2B3C54]",
)
add(
    "recipient-unknown",
    "bounced",
    "5.0.0",
    "zed@yahoo.com",
    Y,
    "98.136.96.75",
    "said",
    "554 delivery error: dd This user doesn't have a yahoo.com account (zed@yahoo.com) [0] - mta1234.mail.gq1.yahoo.com",
    "end of DATA",
)
add(
    "recipient-unknown",
    "bounced",
    "5.0.0",
    "ada@gmx.net",
    X,
    "212.227.15.15",
    "said",
    "550 Requested action not taken: mailbox unavailable",
)
add(
    "recipient-unknown",
    "bounced",
    "5.2.1",
    "bea@gmail.com",
    G,
    "142.250.102.27",
    "said",
    "550-5.2.1 The email account that you tried to reach is disabled. For more 550 5.2.1 information, go to  https://support.google.com/mail/?p=DisabledUser 5b1f17b1804b1-4316a1b2c3dsi654321f5.89 - gsmtp",
)
add(
    "recipient-unknown",
    "bounced",
    "5.0.0",
    "cal@example.org",
    "mx.example.org",
    "198.51.100.25",
    "said",
    "550 Unrouteable address",
)

# mailbox-full
add(
    "mailbox-full",
    "deferred",
    "4.2.2",
    "dee@example.net",
    M,
    "203.0.113.5",
    "said",
    "452 4.2.2 <dee@example.net>: Recipient address rejected: Mailbox full",
)
add(
    "mailbox-full",
    "deferred",
    "4.2.2",
    "eve@gmail.com",
    G,
    "142.250.102.27",
    "said",
    "452-4.2.2 The recipient's inbox is out of storage space. Please direct the 452-4.2.2 recipient to 452 4.2.2  https://support.google.com/mail/?p=OverQuotaTemp 5b1f17b1804b1-4316a1b2c3dsi111111f5.90 - gsmtp",
)
add(
    "mailbox-full",
    "bounced",
    "5.2.2",
    "fox@example.org",
    "mx.example.org",
    "198.51.100.25",
    "said",
    "552 5.2.2 Mailbox full",
    "end of DATA",
)
add(
    "mailbox-full",
    "bounced",
    "5.2.2",
    "gil@example-net.com",
    MS,
    "52.101.68.3",
    "said",
    "554 5.2.2 mailbox full; STOREDRV.Deliver.Exception:QuotaExceededException.MapiExceptionShutoffQuotaExceeded; Failed to process message due to a permanent exception with message [BeginDiagnosticData]Cannot open mailbox.[EndDiagnosticData]",
    "end of DATA",
)
add(
    "mailbox-full",
    "bounced",
    "5.2.2",
    "hue@example.com",
    "mx1.example.com",
    "198.51.100.40",
    "said",
    "552 5.2.2 <hue@example.com>: Mailbox size limit exceeded",
    "end of DATA",
)

# message-too-large
add(
    "message-too-large",
    "bounced",
    "5.3.4",
    "ike@gmail.com",
    G,
    "142.250.102.27",
    "said",
    "552-5.3.4 Your message exceeded Google's message size limits. For more information, 552-5.3.4 visit  https://support.google.com/mail/?p=MaxSizeError 552 5.3.4  5b1f17b1804b1-4316a1b2c3dsi222222f5.91 - gsmtp",
    "end of DATA",
)
add(
    "message-too-large",
    "bounced",
    "5.3.4",
    "jan@example.net",
    M,
    "203.0.113.5",
    "said",
    "552 5.3.4 Message size exceeds fixed maximum message size",
    "end of DATA",
)
add(
    "message-too-large",
    "bounced",
    "5.3.4",
    "kai@example.org",
    "mx.example.org",
    "198.51.100.25",
    "said",
    "552 5.3.4 message too big",
    "end of DATA",
)
add(
    "message-too-large",
    "bounced",
    "5.2.3",
    "lou@example.com",
    "mx1.example.com",
    "198.51.100.40",
    "said",
    "552 5.2.3 Message length exceeds administrative limit",
    "end of DATA",
)

# greylisted
add(
    "greylisted",
    "deferred",
    "4.2.0",
    "mia@example.net",
    M,
    "203.0.113.5",
    "said",
    "450 4.2.0 <mia@example.net>: Recipient address rejected: Greylisted, see http://postgrey.schweikert.ch/help/example.net.html",
)
add(
    "greylisted",
    "deferred",
    "4.7.1",
    "nia@example.org",
    "mx.example.org",
    "198.51.100.25",
    "said",
    "451 4.7.1 Please try again later",
)
add(
    "greylisted",
    "deferred",
    "4.7.1",
    "ole@example.com",
    "mx1.example.com",
    "2001:db8::40",
    "said",
    "451 4.7.1 Try again later",
)
add(
    "greylisted",
    "deferred",
    "4.0.0",
    "pia@example.net",
    M,
    "203.0.113.5",
    "said",
    "451 Greylisted, please try again in 5 minutes",
)
add(
    "greylisted",
    "deferred",
    "4.7.1",
    "quy@example.org",
    "mx.example.org",
    "198.51.100.25",
    "said",
    "450 4.7.1 <quy@example.org>: Recipient address rejected: Greylisting in action, please come back later",
)

# rate-limited
add(
    "rate-limited",
    "deferred",
    "4.7.0",
    "rex@gmail.com",
    G,
    "142.250.102.27",
    "said",
    "421-4.7.0 [192.0.2.10      15] Our system has detected an unusual rate of 421-4.7.0 unsolicited mail originating from your IP address. To protect our 421-4.7.0 users from spam, mail sent from your IP address has been temporarily 421-4.7.0 rate limited. For more information, go to 421-4.7.0  https://support.google.com/mail/?p=UnsolicitedRateLimitError to 421 4.7.0 review our Bulk Email Senders Guidelines. 5b1f17b1804b1-4316a1b2c3dsi333333f5.92 - gsmtp",
    "end of DATA",
)
add(
    "rate-limited",
    "deferred",
    "4.7.28",
    "sue@gmail.com",
    G,
    "142.250.102.27",
    "said",
    "421-4.7.28 [192.0.2.10      15] Gmail has detected an unusual rate of unsolicited 421-4.7.28 mail originating from your SPF domain [example.com      15]. To 421-4.7.28 protect our users from spam, mail sent from your domain has been 421 4.7.28 temporarily rate limited. 5b1f17b1804b1-4316a1b2c3dsi444444f5.93 - gsmtp",
    "end of DATA",
)
add(
    "rate-limited",
    "deferred",
    "4.2.1",
    "ted@gmail.com",
    G,
    "142.250.102.27",
    "said",
    "450-4.2.1 The user you are trying to contact is receiving mail at a rate that 450-4.2.1 prevents additional messages from being delivered. Please resend your 450-4.2.1 message at a later point. If the user is able to receive mail at that 450-4.2.1 time, your message will be delivered. For more information, go to 450 4.2.1  https://support.google.com/mail/?p=ReceivingRate 5b1f17b1804b1-4316a1b2c3dsi555555f5.94 - gsmtp",
)
add(
    "rate-limited",
    "deferred",
    "4.7.0",
    "uli@yahoo.com",
    Y,
    "67.195.204.72",
    "said",
    "421 4.7.0 [TSS04] Messages from 192.0.2.10 temporarily deferred due to unexpected volume or user complaints - 4.16.55.1; see https://postmaster.yahooinc.com/error-codes",
    "MAIL FROM",
)
add(
    "rate-limited",
    "deferred",
    "4.7.500",
    "vic@outlook.com",
    "outlook-com.olc.protection.outlook.com",
    "52.101.42.1",
    "said",
    "451 4.7.500 Server busy. Please try again later from [192.0.2.10]. (S77719) [AM4PEPF00027A5C.eurprd04.prod.outlook.com 2026-11-24T19:00:00.000Z 08DD0C7C1A2B3C55]",
    "MAIL FROM",
)
add(
    "rate-limited",
    "deferred",
    "4.7.650",
    "wyn@hotmail.com",
    "hotmail-com.olc.protection.outlook.com",
    "52.101.42.2",
    "said",
    "451 4.7.650 The mail server [192.0.2.10] has been temporarily rate limited due to IP reputation. For e-mail delivery information, see https://postmaster.live.com (S775) [AM4PEPF00027A5E.eurprd04.prod.outlook.com]",
    "MAIL FROM",
)
add(
    "rate-limited",
    "deferred",
    "4.0.0",
    "xan@web.de",
    W,
    "212.227.15.3",
    "said",
    "421 Rate limit reached. Please try again later",
    "MAIL FROM",
)
add(
    "rate-limited",
    "deferred",
    "4.7.0",
    "yan@example.net",
    M,
    "203.0.113.5",
    "greeting",
    "421 4.7.0 mx.example.net Error: too many connections from 192.0.2.10",
)

# tls-required
add(
    "tls-required",
    "deferred",
    "4.7.0",
    "zia@example-workspace.com",
    "aspmx.l.google.com",
    "142.250.102.26",
    "said",
    "421-4.7.0 TLS required for RCPT domain, closing connection. For more information, 421 4.7.0 go to  https://support.google.com/a/answer/6330345 5b1f17b1804b1-4316a1b2c3dsi666666f5.95 - gsmtp",
    "RCPT TO",
    "check=tls",
)
add(
    "tls-required",
    "bounced",
    "5.7.0",
    "abe@example.net",
    M,
    "203.0.113.5",
    "said",
    "530 5.7.0 Must issue a STARTTLS command first",
    "MAIL FROM",
)
add(
    "tls-required",
    "bounced",
    "5.7.10",
    "bob@example.org",
    "mx.example.org",
    "198.51.100.25",
    "said",
    "550 5.7.10 TLS required",
    "MAIL FROM",
)
add(
    "tls-required",
    "deferred",
    "4.7.4",
    "cat@example.com",
    "mx1.example.com",
    "198.51.100.40",
    "local",
    "TLS is required, but was not offered by host mx1.example.com[198.51.100.40]",
)
add(
    "tls-required",
    "deferred",
    "4.7.5",
    "dan@example.net",
    M,
    "203.0.113.5",
    "local",
    "Server certificate not verified",
)
add(
    "tls-required",
    "deferred",
    "4.7.5",
    "eva@example.org",
    "mx.example.org",
    "2001:db8::25",
    "local",
    "Cannot start TLS: handshake failure",
)

# spam-content
add(
    "spam-content",
    "bounced",
    "5.7.1",
    "fin@gmail.com",
    G,
    "142.250.102.27",
    "said",
    "550-5.7.1 [192.0.2.10      12] Our system has detected that this message is 550-5.7.1 likely unsolicited mail. To reduce the amount of spam sent to Gmail, 550-5.7.1 this message has been blocked. For more information, go to 550 5.7.1  https://support.google.com/mail/?p=UnsolicitedMessageError 5b1f17b1804b1-4316a1b2c3dsi777777f5.96 - gsmtp",
    "end of DATA",
)
add(
    "spam-content",
    "deferred",
    "4.7.0",
    "gia@gmail.com",
    G,
    "142.250.102.27",
    "said",
    "421-4.7.0 This message is suspicious due to the nature of the content or the 421-4.7.0 links within. To best protect our users from spam, the message has been 421-4.7.0 blocked. For more information, go to 421 4.7.0  https://support.google.com/mail/answer/188131 5b1f17b1804b1-4316a1b2c3dsi888888f5.97 - gsmtp",
    "end of DATA",
)
add(
    "spam-content",
    "bounced",
    "5.7.9",
    "hob@yahoo.com",
    Y,
    "67.195.204.72",
    "said",
    "554 5.7.9 Message not accepted for policy reasons.  See https://postmaster.yahooinc.com/error-codes",
    "end of DATA",
)
add(
    "spam-content",
    "bounced",
    "5.0.0",
    "ivy@web.de",
    W,
    "212.227.15.3",
    "said",
    "554-Transaction failed 554-Reject due to policy restrictions. 554 For explanation visit https://postmaster.web.de/en/case?c=t0302&i=ip&v=192.0.2.10&r=0LdvHb-1tX9qK0abc-00kLmN",
    "end of DATA",
)
add(
    "spam-content",
    "bounced",
    "5.7.1",
    "jo@example.net",
    M,
    "203.0.113.5",
    "said",
    "554 5.7.1 Message rejected as spam by Content Filtering.",
    "end of DATA",
)
add(
    "spam-content",
    "bounced",
    "5.7.350",
    "kit@example-net.com",
    MS,
    "52.101.68.3",
    "said",
    "550 5.7.350 Remote server returned message detected as spam -> 554 5.7.1 The message from (<app@example.com>) with the subject of (Your invoice) matches a profile the Internet community may consider spam.",
    "end of DATA",
)

add(
    "spam-content",
    "bounced",
    "5.7.1",
    "lu@icloud.com",
    "mx01.mail.icloud.com",
    "17.57.154.6",
    "said",
    "554 5.7.1 [CS01] Message rejected due to local policy. Please visit https://support.apple.com/en-us/HT204137",
    "end of DATA",
)
add(
    "spam-content",
    "bounced",
    "5.0.0",
    "mo@example-mimecast.com",
    "eu-smtp-inbound-1.mimecast.com",
    "195.130.217.211",
    "said",
    "554 Email rejected due to security policies - https://community.mimecast.com/docs/DOC-1369#554",
    "end of DATA",
)
# connection-failed
add(
    "connection-failed",
    "deferred",
    "4.4.1",
    "lia@example.net",
    M,
    "203.0.113.5",
    "connect",
    "Connection refused",
)
add(
    "connection-failed",
    "deferred",
    "4.4.1",
    "mo@example.org",
    "mx.example.org",
    "198.51.100.25",
    "connect",
    "Connection timed out",
)
add(
    "connection-failed",
    "deferred",
    "4.4.1",
    "nat@example.com",
    "mx1.example.com",
    "2001:db8::40",
    "connect",
    "No route to host",
)
add(
    "connection-failed",
    "deferred",
    "4.4.1",
    "oz@example.net",
    M,
    "2001:db8::5",
    "connect",
    "Network is unreachable",
)
add(
    "connection-failed",
    "deferred",
    "4.4.2",
    "pat@example.org",
    "mx.example.org",
    "198.51.100.25",
    "lost",
    "while receiving the initial server greeting",
)
add(
    "connection-failed",
    "deferred",
    "4.4.2",
    "ron@example.com",
    "mx1.example.com",
    "198.51.100.40",
    "timeout",
    "while receiving the initial server greeting",
)
add(
    "connection-failed",
    "deferred",
    "4.4.1",
    "sol@example.net",
    M,
    "203.0.113.5",
    "suspended",
    "Connection timed out",
)
add(
    "connection-failed",
    "deferred",
    "4.4.2",
    "tom@example.org",
    "mx.example.org",
    "2001:db8::25",
    "lost",
    "while sending end of data -- message may be sent more than once",
)

# recipient-domain-dns
add(
    "recipient-domain-dns",
    "deferred",
    "4.4.3",
    "ugo@example.invalid",
    None,
    None,
    "dns",
    "Host or domain name not found. Name service error for name=example.invalid type=MX: Host not found, try again",
    extra="check=mx",
)
add(
    "recipient-domain-dns",
    "bounced",
    "5.4.4",
    "vera@exmaple.com",
    None,
    None,
    "dns",
    "Host or domain name not found. Name service error for name=exmaple.com type=A: Host not found",
)
add(
    "recipient-domain-dns",
    "deferred",
    "4.4.3",
    "wim@example.org",
    None,
    None,
    "dns",
    "delivery temporarily suspended: Host or domain name not found. Name service error for name=example.org type=MX: Host not found, try again",
)
add(
    "recipient-domain-dns",
    "bounced",
    "5.1.10",
    "xu@example.com",
    None,
    None,
    "dns",
    "Domain example.com does not accept mail (nullMX)",
)
add(
    "recipient-domain-dns",
    "bounced",
    "5.7.1",
    "yao@example.net",
    M,
    "203.0.113.5",
    "said",
    "554 5.7.1 <yao@example.net>: Relay access denied",
)

# unknown
add(
    "unknown",
    "deferred",
    "4.0.0",
    "zak@example.com",
    "us-smtp-inbound-1.mimecast.com",
    "198.51.100.77",
    "said",
    "451 Internal resource temporarily unavailable - https://community.mimecast.com/docs/DOC-1369#451",
)
add(
    "unknown",
    "bounced",
    "5.7.1",
    "ana@example.com",
    "us-smtp-inbound-1.mimecast.com",
    "198.51.100.77",
    "said",
    "550 5.7.1 Transaction failed",
    "end of DATA",
)
add(
    "unknown",
    "bounced",
    "5.4.6",
    "bo@example.org",
    None,
    None,
    "local",
    "mail for example.org loops back to myself",
)


def fmt_classic(t):
    return t.strftime("%b ") + f"{t.day:>2}" + t.strftime(" %H:%M:%S")


def fmt_rfc(t):
    return t.isoformat(timespec="microseconds")


def qid(i, long):
    if long:
        alphabet = "0123456789BCDFGHJKLMNPQRSTVWXYZbcdfghjklmnpqrstvwxyz"
        return (
            "4"
            + "".join(random.choice(alphabet) for _ in range(10))
            + "z"
            + "".join(random.choice(alphabet) for _ in range(3))
        )
    return "".join(random.choice("0123456789ABCDEF") for _ in range(11))


def status_text(form, host, ip, reply, stage):
    hp = f"{host}[{ip}]"
    if form == "said":
        return f"host {hp} said: {reply} (in reply to {stage} command)"
    if form == "greeting":
        return f"host {hp} refused to talk to me: {reply}"
    if form == "connect":
        return f"connect to {hp}:25: {reply}"
    if form == "suspended":
        return f"delivery temporarily suspended: connect to {hp}:25: {reply}"
    if form == "lost":
        return f"lost connection with {hp} {reply}"
    if form == "timeout":
        return f"conversation with {hp} timed out {reply}"
    return reply


def postfix(path, tsfmt, tz, long_ids):
    t = datetime(2026, 11, 24, 6, 25, 1, 123456, tzinfo=tz)
    out = [
        "# mailwright explain corpus: Postfix mail.log lines, one failure per message.",
        "# '# expect: CAUSE [list=NAME] [check=ID]' names the cause of the next status line.",
        "# Written for mailwright from the receivers' published reply texts; IPs and names",
        "# are documentation values (RFC 5737, RFC 3849) or placeholders.",
    ]
    pid = 3000
    for i, (cause, extra, status, dsn, rcpt, host, ip, form, reply, stage) in enumerate(E):
        q = qid(i, long_ids)
        pid += 7
        ts = tsfmt(t)
        hn = "mail"
        out.append(
            f"{ts} {hn} postfix/submission/smtpd[{pid}]: {q}: client=localhost[127.0.0.1], sasl_method=PLAIN, sasl_username=app"
        )
        out.append(
            f"{ts} {hn} postfix/cleanup[{pid + 1}]: {q}: message-id=<{20261124062501 + i}.{pid}@example.com>"
        )
        out.append(
            f"{ts} {hn} postfix/qmgr[812]: {q}: from=<app@example.com>, size={2000 + 37 * i}, nrcpt=1 (queue active)"
        )
        t += timedelta(seconds=1 + i % 5)
        ts = tsfmt(t)
        if form == "dns" or (form == "local" and host is None):
            relay = "none"
            prog = "postfix/smtp"
            if reply.startswith("delivery temporarily suspended"):
                prog = "postfix/error"
        elif form == "suspended":
            relay, prog = "none", "postfix/error"
        elif form == "connect":
            relay, prog = "none", "postfix/smtp"
        else:
            relay = f"{host}[{ip}]:25"
            prog = "postfix/smtp"
        text = status_text(form, host, ip, reply, stage)
        delays = "0.02/0.01/0.31/0.4" if relay != "none" else "0.02/0/30/0"
        out.append(f"# expect: {cause}" + (f" {extra}" if extra else ""))
        out.append(
            f"{ts} {hn} {prog}[{pid + 2}]: {q}: to=<{rcpt}>, relay={relay}, delay=1.2, delays={delays}, dsn={dsn}, status={status} ({text})"
        )
        if status == "bounced":
            out.append(
                f"{ts} {hn} postfix/bounce[{pid + 3}]: {q}: sender non-delivery notification: {qid(i + 1000, long_ids)}"
            )
            out.append(f"{ts} {hn} postfix/qmgr[812]: {q}: removed")
        t += timedelta(seconds=2)
    Path(path).write_text("\n".join(out) + "\n")


def esc(v):
    return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'


def mailwright(path):
    t = datetime(2026, 11, 24, 18, 0, 0, 250000, tzinfo=UTC)
    out = [
        "# mailwright explain corpus: mailwright's own log (docs/log-format.md), the same causes.",
        "# '# expect: CAUSE [list=NAME] [check=ID]' names the cause of the next failure event.",
    ]
    for i, (cause, extra, status, dsn, rcpt, host, ip, form, reply, _stage) in enumerate(E):
        q = qid(i, True)[:12]
        ts = t.isoformat(timespec="microseconds")
        out.append(
            f"{ts} mailwright[4242]: event=accepted id={q} from=<app@example.com> size={3000 + i} nrcpt=1 client=127.0.0.1 listener=submission user=app"
        )
        out.append(
            f"{ts} mailwright[4242]: event=signed id={q} domain=example.com selectors=mail,mail-ed"
        )
        t += timedelta(seconds=3)
        ts = t.isoformat(timespec="microseconds")
        relay = f"{host}[{ip}]:25" if host else "none"
        # What mailwright's delivery client writes: the remote reply as received, or the
        # reply it made up when there was none (docs/log-format.md).
        if form in ("said", "greeting"):
            r = reply
        elif form == "connect" or form == "suspended":
            r = f"421 4.4.1 connect to {host}[{ip}]:25: {reply}"
        elif form == "lost":
            r = f"421 4.4.2 lost connection with {host}[{ip}]: {reply}"
        elif form == "timeout":
            r = f"421 4.4.2 timeout waiting for {host}[{ip}]:25"
        elif form == "dns":
            if "nullMX" in reply:
                r = "550 5.1.10 example.com does not accept mail (null MX, RFC 7505)"
            elif "try again" in reply:
                r = f"451 4.4.3 {rcpt.split('@')[1]}: MX lookup failed: SERVFAIL"
            else:
                r = f"550 5.1.2 {rcpt.split('@')[1]}: domain not found (NXDOMAIN)"
        else:
            r = reply
            if cause == "tls-required":
                r = {
                    "4.7.4": f"421 4.7.4 {host}[{ip}]:25 does not offer STARTTLS",
                    "4.7.5": f"421 4.7.5 TLS handshake with {host}[{ip}]:25 failed: CERTIFICATE_VERIFY_FAILED",
                }[dsn]
        mdsn = {"dns": r.split()[1]}.get(form, dsn)
        ev = "bounced" if status == "bounced" else "deferred"
        line = f"{ts} mailwright[4242]: event={ev} id={q} to=<{rcpt}> relay={relay} delay={3 + i}.1 dsn={mdsn} reply={esc(r)}"
        if ev == "deferred":
            line += f" next_retry={(t + timedelta(minutes=5)).isoformat(timespec='seconds')}"
        out.append(f"# expect: {cause}" + (f" {extra}" if extra else ""))
        out.append(line)
        t += timedelta(seconds=1)
    Path(path).write_text("\n".join(out) + "\n")


if __name__ == "__main__":
    from collections import Counter

    base = Path(__file__).resolve().parent
    postfix(base / "postfix-classic.log", fmt_classic, None, False)
    postfix(base / "postfix-rfc3339.log", fmt_rfc, timezone(timedelta(hours=1)), True)
    mailwright(base / "mailwright.log")
    print(dict(Counter(e[0] for e in E)))
