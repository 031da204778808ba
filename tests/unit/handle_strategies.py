"""Hypothesis strategies for every Handle value layout and message body."""

from __future__ import annotations

from typing import TypeVar

from hypothesis import strategies as st

from millnet.protocols import handle as h

T = TypeVar("T")


def tuples_of(items: st.SearchStrategy[T], *, min_size: int = 0, max_size: int = 3,
              ) -> st.SearchStrategy[tuple[T, ...]]:
    return st.lists(items, min_size=min_size, max_size=max_size).map(tuple)


u8 = st.integers(0, 0xFF)
u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFFFFFF)
text = st.text(st.characters(codec="utf-8"), max_size=12)
blobs = st.binary(max_size=24)

references = tuples_of(st.builds(h.ValueReference, text, u32))
values = tuples_of(st.builds(h.HandleValue, u32, text, blobs, u8, u32, u32, u8, references))
digests = st.one_of(
    *[st.builds(h.RequestDigest, st.just(alg), st.binary(min_size=size, max_size=size))
      for alg, size in h.constants.DIGEST_SIZES.items()],
    st.builds(h.RequestDigest, st.just(h.DigestAlgorithm.LEGACY), st.binary(max_size=40)),
)

interfaces = st.builds(h.ServiceInterface, u8, u8, u32)
servers = st.builds(h.ServerRecord, u32, st.binary(min_size=16, max_size=16), blobs,
                    tuples_of(interfaces))
sites = st.builds(h.SiteInfo, u16, tuples_of(servers),
                  tuples_of(st.tuples(text, text)), st.booleans(),
                  st.booleans(), u8, u8, u8, blobs, u16)
admins = st.builds(h.AdminRecord, u16, text, u32)
pubkeys = st.one_of(
    *[st.builds(h.PublicKeyRecord, st.just(kt), st.lists(blobs, min_size=len(parts),
                                                          max_size=len(parts)).map(tuple), u16)
      for kt, parts in h.values.KEY_PARTS.items()],
    st.builds(h.PublicKeyRecord, text.filter(lambda t: t not in h.values.KEY_PARTS), st.just(()),
              u16, blobs),
)

REQUEST_STRATEGIES = (
    st.builds(h.ResolutionRequest, text, tuples_of(u32),
              tuples_of(text), st.none() | blobs),
    st.builds(h.GetSiteInfoRequest, text),
    st.builds(h.CreateHandleRequest, text, values),
    st.builds(h.DeleteHandleRequest, text),
    st.builds(h.AddValueRequest, text, values),
    st.builds(h.RemoveValueRequest, text, tuples_of(u32)),
    st.builds(h.ModifyValueRequest, text, values),
    st.builds(h.ListHandlesRequest, text),
    st.builds(h.ChallengeAnswer, text, text, u32, blobs),
    st.builds(h.VerifyChallengeRequest, text, u32, blobs, digests, blobs),
    st.builds(h.PasswordLoginRequest, text, text),
    st.builds(h.PublicKeyLoginRequest, text, u32),
)
requests = st.one_of(*REQUEST_STRATEGIES)

GENERIC_OPS = [op for op, cls in h.responses.SUCCESSES.items() if cls is h.GenericResponse]
SPECIAL_CODES = {h.ResponseCode.RESERVED, h.ResponseCode.SUCCESS, h.ResponseCode.SERVICE_REFERRAL,
                 h.ResponseCode.NA_DELEGATE, h.ResponseCode.AUTHEN_NEEDED}
#: codes hdllib rewrites for peers older than 2.5: generated only with newer versions
OLD_PEER_CODES = {h.ResponseCode.VALUE_INVALID, h.ResponseCode.SERVER_BACKUP}
ERROR_CODES = [c for c in h.ResponseCode if c not in SPECIAL_CODES]

RESPONSE_STRATEGIES = (
    st.builds(h.ResolutionResponse, text, values),
    st.builds(h.PasswordLoginResponse, text, values),
    st.builds(h.GetSiteInfoResponse, sites),
    st.builds(h.CreateHandleResponse, st.none() | text),
    st.builds(h.ListHandlesResponse, tuples_of(text)),
    st.builds(h.VerifyChallengeResponse, st.booleans()),
    st.builds(h.GenericResponse, st.sampled_from(GENERIC_OPS)),
    st.builds(h.ErrorResponse, u32, st.sampled_from(ERROR_CODES), text),
    st.builds(h.ServiceReferral, u32, text, st.none() | values,
              st.sampled_from([h.ResponseCode.SERVICE_REFERRAL, h.ResponseCode.NA_DELEGATE])),
    st.builds(h.Challenge, u32, blobs),
)
responses = st.one_of(*RESPONSE_STRATEGIES)


def envelopes(minor: st.SearchStrategy[int]) -> st.SearchStrategy[h.Envelope]:
    return st.builds(h.Envelope, st.just(2), minor, st.integers(0, 3), u8, u32, u32, u32)


@st.composite
def messages(draw: st.DrawFn, bodies: st.SearchStrategy[h.Body] | None = None) -> h.Message:
    body = draw(bodies if bodies is not None else st.one_of(requests, responses))
    code = body.response_code
    needs_new = code in OLD_PEER_CODES or code == h.ResponseCode.NA_DELEGATE
    env = draw(envelopes(st.integers(5 if needs_new else 1, 11)))
    flags = draw(u32)
    digest = None
    if code != h.ResponseCode.RESERVED:
        digest = draw(st.none() | digests)
        flags = (flags & ~h.OpFlag.RD) | (h.OpFlag.RD if digest else 0)
    header = h.Header(flags, draw(u16), draw(u8), draw(u32))
    return h.Message(body, header, env, digest, draw(st.none() | blobs))
