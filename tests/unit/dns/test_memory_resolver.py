"""The in-memory resolver models the outcomes the SPF/DKIM/DMARC rules depend on."""

from mailwright.dns import MemoryResolver, MXRecord, Outcome


async def test_answer_nodata_nxdomain_are_distinct() -> None:
    r = MemoryResolver().add("example.com", "MX", (10, "Mail.Example.com."))
    mx = await r.mx("EXAMPLE.com.")
    assert mx.outcome is Outcome.ANSWER
    assert mx.records == (MXRecord(10, "mail.example.com"),)
    assert (await r.a("example.com")).outcome is Outcome.NODATA
    assert (await r.a("nowhere.example.com")).outcome is Outcome.NXDOMAIN


async def test_txt_strings_are_joined_without_spaces() -> None:
    # RFC 7208 §3.3: the strings of one TXT record are concatenated as they are.
    r = MemoryResolver().add("example.com", "TXT", ["v=spf1 ip4:192.0.2.1", " -all"])
    r.add("example.com", "TXT", ["v=spf1", "-all"])
    txt = await r.txt("example.com")
    assert txt.records == ("v=spf1 ip4:192.0.2.1 -all", "v=spf1-all")


async def test_cname_is_followed_and_reported() -> None:
    r = MemoryResolver().add("mx.example.com", "CNAME", "host.example.net")
    r.add("host.example.net", "A", "192.0.2.7")
    a = await r.a("mx.example.com")
    assert a.records == ("192.0.2.7",)
    assert a.cnames == ("host.example.net",)


async def test_failures_and_invalid_names() -> None:
    r = MemoryResolver().fail("slow.example.com", "TXT", Outcome.TIMEOUT)
    assert (await r.txt("slow.example.com")).is_error
    assert (await r.txt("slow.example.com")).outcome is Outcome.TIMEOUT
    long_label = "a" * 64 + ".example.com"
    assert (await r.txt(long_label)).outcome is Outcome.INVALID_NAME


async def test_reverse_lookup_of_ipv4_mapped_address() -> None:
    r = MemoryResolver().add("7.2.0.192.in-addr.arpa", "PTR", "mail.example.com.")
    result = await r.reverse("::ffff:192.0.2.7")
    assert result.records == ("mail.example.com",)


async def test_u_label_and_a_label_are_the_same_name() -> None:
    # As on the wire: DnspythonResolver sends bücher.example as xn--bcher-kva.example.
    r = MemoryResolver().add("_dmarc.bücher.example", "TXT", "v=DMARC1; p=none")
    r.add("xn--caf-dma.example", "A", "192.0.2.1")
    assert (await r.txt("_dmarc.xn--bcher-kva.example")).records == ("v=DMARC1; p=none",)
    assert (await r.txt("_dmarc.BÜCHER.example")).ok
    assert (await r.a("café.example")).records == ("192.0.2.1",)
    r.fail("é.example", "MX", Outcome.SERVFAIL)
    assert (await r.mx("xn--9ca.example")).outcome is Outcome.SERVFAIL
    # A CNAME to a U-label target is followed to the A-label owner.
    r.add("alias.example", "CNAME", "café.example")
    assert (await r.a("alias.example")).records == ("192.0.2.1",)
