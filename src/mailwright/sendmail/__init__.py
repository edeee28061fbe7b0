"""The sendmail interface: mail from programs that do not speak SMTP.

cron, ``mail``, PHP's ``mail()`` and Django's ``sendmail`` backend run
``/usr/sbin/sendmail``; this package is everything between that command and our queue:

* :mod:`.command`: the Sendmail command line and the piped message, sans I/O;
* :mod:`.maildrop`: where the command leaves each message, durably, without the server;
* :mod:`.pickup`: the server's side, which queues what waits in the maildrop;
* :mod:`.qualify`: the machine's own names (``root``, ``@localhost``) made our domain's;
* :mod:`.install`: making ``mailwright-sendmail`` the system's ``sendmail`` (Debian).

Nothing is imported here: the command (``mailwright-sendmail``) loads only what it uses.
"""
