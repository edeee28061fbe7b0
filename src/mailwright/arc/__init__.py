"""ARC, the Authenticated Received Chain (RFC 8617): validate what arrives, seal what we
pass on.

:func:`verify_chain` gives the Chain Validation Status of an arriving message (for our
Authentication-Results and the ``trusted_arc_sealers`` policy); :func:`seal_message` makes
the ARC Set we add to mail we forward. Signing and key code come from
:mod:`mailwright.dkim`.
"""

from .chain import MAX_INSTANCES, ArcSet, ArcStatus, Chain, collect
from .seal import chain_status_of, seal_message
from .verify import ArcResult, verify_chain

__all__ = [
    "MAX_INSTANCES",
    "ArcResult",
    "ArcSet",
    "ArcStatus",
    "Chain",
    "chain_status_of",
    "collect",
    "seal_message",
    "verify_chain",
]
