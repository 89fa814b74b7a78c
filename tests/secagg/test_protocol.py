"""The protocol end to end: sums, dropouts at each stage, refusals, signatures, what the hub can see."""

from __future__ import annotations

import json
from collections.abc import Callable

import numpy as np
import pytest

from phds.errors import InputError, SecAggError, SignatureInvalid
from phds.secagg import (
    Aggregator,
    MaskedInput,
    Participant,
    SessionConfig,
    aggregate,
    collect_keys,
    default_threshold,
)
from phds.secagg.protocol import decode_vector, sign
from phds.trust.keys import KeyPair, b64encode

from .conftest import Network, wire

Make = Callable[..., Network]


def _floats(net: Network, rng: np.random.Generator) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    values = {n: rng.normal(0, 50, net.config.vector_length) for n in net.names}
    return values, {n: net.config.encode(v) for n, v in values.items()}


def _sum(values: dict[str, np.ndarray], names: list[str]) -> np.ndarray:
    return np.sum([values[n] for n in names], axis=0)


@pytest.mark.parametrize("n", [3, 5, 10])
def test_the_sum_equals_the_plaintext_sum(network: Make, rng: np.random.Generator, n: int) -> None:
    net = network(n, 50, scale=2**20, clip=1e4)
    values, vectors = _floats(net, rng)
    result = net.run(vectors)
    assert result.contributors == net.names and result.dropped_before_input == []
    bound = net.config.fixed_point.max_error(n) + 1e-9
    assert np.all(np.abs(net.config.decode(result.total) - _sum(values, net.names)) <= bound)


def test_integer_counts_are_exact_including_negative(network: Make, rng: np.random.Generator) -> None:
    net = network(5, 20)
    counts = {n: rng.integers(-(10**9), 10**9, 20) for n in net.names}
    result = net.run({n: net.config.encode(c) for n, c in counts.items()})
    assert net.config.fixed_point.decode_int(result.total).tolist() == _sum(counts, net.names).tolist()


def test_the_default_threshold_is_a_strict_majority() -> None:
    assert [default_threshold(n) for n in (2, 3, 4, 5, 10, 11)] == [2, 2, 3, 3, 6, 6]


@pytest.mark.parametrize("n", [3, 5, 10])
def test_up_to_n_minus_t_drop_after_their_masked_input(
    network: Make, rng: np.random.Generator, n: int
) -> None:
    """Their inputs stay in the sum: the others' shares of their b_u remove their self-masks."""
    net = network(n, 30, scale=1000)
    values, vectors = _floats(net, rng)
    gone = net.names[: n - net.config.threshold]
    result = net.run(vectors, no_unmask=gone)
    assert result.contributors == net.names and result.dropped_after_input == gone
    assert np.allclose(net.config.decode(result.total), _sum(values, net.names), atol=n / 2000 + 1e-9)


@pytest.mark.parametrize("n", [3, 5, 10])
def test_up_to_n_minus_t_drop_before_their_masked_input(
    network: Make, rng: np.random.Generator, n: int
) -> None:
    """They are left out and named; their pairwise masks with the survivors are removed from s_v^SK."""
    net = network(n, 30, scale=1000)
    values, vectors = _floats(net, rng)
    gone = net.names[1 : 1 + n - net.config.threshold]
    result = net.run(vectors, no_input=gone)
    survivors = [v for v in net.names if v not in gone]
    assert result.contributors == survivors and result.dropped_before_input == gone
    assert np.allclose(net.config.decode(result.total), _sum(values, survivors), atol=n / 2000 + 1e-9)


def test_dropouts_at_every_stage_at_once(network: Make, rng: np.random.Generator) -> None:
    net = network(10, 10, scale=1000)  # t = 6
    values, vectors = _floats(net, rng)
    result = net.run(vectors, no_keys=["h00"], no_shares=["h04"], no_input=["h07"], no_unmask=["h01"])
    survivors = ["h01", "h02", "h03", "h05", "h06", "h08", "h09"]
    assert result.contributors == survivors
    assert result.dropped_before_input == ["h00", "h04", "h07"]
    assert result.dropped_after_input == ["h01"]
    assert np.allclose(net.config.decode(result.total), _sum(values, survivors), atol=0.01)


def test_too_many_dropouts_are_a_clear_error(network: Make, rng: np.random.Generator) -> None:
    net = network(5, 4)  # t = 3
    _, vectors = _floats(net, rng)
    net.share_keys(net.advertise())
    net.masked_input(vectors, skip=["h00", "h01", "h02"])
    with pytest.raises(SecAggError, match=r"only 2 participants sent masked inputs.*needs 3 of 5"):
        net.hub.unmask_request()
    with pytest.raises(SecAggError, match="only 2 survivors"):
        net.node("h03").unmask(["h03", "h04"], ["h00", "h01", "h02"])

    net = network(5, 4)
    with pytest.raises(SecAggError, match="too many dropped out"):
        net.run(vectors, no_unmask=["h00", "h01", "h02"])
    with pytest.raises(SecAggError, match="only 2 participants advertised"):
        network(5, 4).advertise(skip=["h00", "h01", "h02"])


def test_a_participant_refuses_to_reveal_both_masks_of_one_party(
    network: Make, rng: np.random.Generator
) -> None:
    """Bonawitz §4: b_v and s_v^SK together would unmask x_v."""
    net = network(5, 4)
    _, vectors = _floats(net, rng)
    net.share_keys(net.advertise())
    net.masked_input(vectors)
    node = net.node("h00")
    with pytest.raises(SecAggError, match=r"refusing to reveal both b and s of \['h04'\]"):
        node.unmask(net.names, ["h04"])
    node.unmask(net.names, [])  # b of everyone
    node.unmask(net.names, [])  # the same request again is answered again
    with pytest.raises(SecAggError, match=r"refusing to reveal both b and s of \['h04'\]"):
        node.unmask(net.names[:4], ["h04"])  # later asking for s of h04, whose b it revealed
    net.save(node)
    with pytest.raises(SecAggError, match="refusing"):  # remembered across persistence
        net.node("h00").unmask(net.names[:4], ["h04"])
    with pytest.raises(SecAggError, match="listed as dropped"):
        net.node("h01").unmask(["h00", "h02", "h03", "h04"], ["h01"])
    with pytest.raises(InputError, match="survivor or dropped"):
        net.node("h01").unmask(["h00", "h01", "h02"], [])


def test_forged_and_tampered_messages_are_rejected(network: Make, rng: np.random.Generator) -> None:
    net = network(3, 6)
    _, vectors = _floats(net, rng)
    impostor = KeyPair.generate()
    forged = sign(net.node("h01").advertise(), impostor)
    with pytest.raises(SignatureInvalid, match="KeysMessage from 'h01'"):
        net.hub.receive_keys(forged)
    broadcast = net.advertise()
    with pytest.raises(SignatureInvalid, match="does not verify"):
        net.node("h00").share_keys({**broadcast, "h01": forged})
    swapped = broadcast["h02"].model_copy(update={"s_public": broadcast["h01"].s_public})
    with pytest.raises(SignatureInvalid):
        net.node("h00").share_keys({**broadcast, "h02": swapped})
    net.share_keys(broadcast)
    routed = net.hub.route()
    to_h00 = routed["h00"]
    readdressed = to_h00[1].model_copy(update={"recipient": "h02"})
    with pytest.raises(SignatureInvalid):
        net.node("h02").masked_input(vectors["h02"], [*routed["h02"][:1], readdressed, routed["h02"][2]])
    net.masked_input(vectors)
    y = net.masked[0]
    altered = y.model_copy(update={"vector": b64encode(bytes(8 * 6))})
    with pytest.raises(SignatureInvalid, match="MaskedInput from 'h00'"):
        net.hub.receive_masked(altered)
    with pytest.raises(SignatureInvalid):  # the pure function checks stored messages too
        aggregate(net.config, net.keys, [altered, *net.masked[1:]], [], verify_keys=net.pinned)
    net.unmask()
    answer = net.unmasks[0]
    leaked = answer.model_copy(update={"b_shares": {**answer.b_shares, "h01": answer.b_shares["h00"]}})
    with pytest.raises(SignatureInvalid):
        net.hub.receive_unmask(leaked)


def test_messages_of_another_session_or_configuration_are_refused(network: Make) -> None:
    net = network(3, 4)
    keys = net.advertise()
    other = SessionConfig(session_id="study-1/round-4", participants=net.names, vector_length=4)
    stranger = Participant(other, "h00", net.signing["h00"], net.pinned)
    with pytest.raises(InputError, match="field session_id"):
        stranger.share_keys(keys)
    with pytest.raises(InputError, match="field session_id"):
        collect_keys(net.config, net.pinned, [stranger.advertise(), *keys.values()])
    bigger = net.config.model_copy(update={"threshold": 3})
    strict = Participant(bigger, "h01", net.signing["h01"], net.pinned)
    with pytest.raises(SecAggError, match="different configuration"):
        strict.share_keys(keys)
    with pytest.raises(InputError, match="signing_key"):
        Participant(net.config, "h00", net.signing["h01"], net.pinned)


def test_the_hub_closes_each_stage_for_good(network: Make, rng: np.random.Generator) -> None:
    """A late message cannot change U1 or U3 after the participants acted on them."""
    net = network(5, 4, scale=1000)  # t = 3
    values, vectors = _floats(net, rng)
    with pytest.raises(SecAggError, match=r"advertise stage .* is open"):
        net.hub.route()
    late = net.node("h04").advertise()
    broadcast = net.advertise(skip=["h04"])
    with pytest.raises(SecAggError, match=r"advertise stage .* is closed"):
        net.hub.receive_keys(late)
    assert list(net.hub.keys()) == ["h00", "h01", "h02", "h03"]  # closing again: the same U1
    net.share_keys(broadcast)
    net.masked_input(vectors, skip=["h03"])
    assert net.hub.unmask_request() == (["h00", "h01", "h02"], ["h03"])
    node = net.node("h03")
    late_input = node.masked_input(vectors["h03"], net.hub.route()["h03"])
    with pytest.raises(SecAggError, match=r"masked input stage .* is closed"):
        net.hub.receive_masked(late_input)
    net.unmask()
    survivors = ["h00", "h01", "h02"]
    assert np.allclose(net.config.decode(net.hub.aggregate().total), _sum(values, survivors), atol=0.01)
    with pytest.raises(SecAggError, match=r"advertise stage .* is open"):
        Aggregator(net.config, net.pinned).aggregate()


def test_a_wrong_reconstruction_is_caught_by_the_commitment(network: Make, rng: np.random.Generator) -> None:
    """A participant answering with a wrong share (re-signed by itself) cannot corrupt the sum silently."""
    net = network(3, 4)
    _, vectors = _floats(net, rng)
    net.share_keys(net.advertise())
    net.masked_input(vectors)
    net.unmask()
    bad = net.unmasks[0]
    bad = sign(
        bad.model_copy(update={"b_shares": {**bad.b_shares, "h01": bad.b_shares["h02"]}}), net.signing["h00"]
    )
    with pytest.raises(SecAggError, match="self-mask of h01 does not match its commitment"):
        aggregate(net.config, net.keys, net.masked, [bad, *net.unmasks[1:]], verify_keys=net.pinned)


def test_the_hub_can_aggregate_from_stored_messages(network: Make, rng: np.random.Generator) -> None:
    net = network(5, 16, scale=1000)
    _, vectors = _floats(net, rng)
    live = net.run(vectors, no_input=["h03"], no_unmask=["h00"])
    stored = [json.dumps(m.model_dump(mode="json")) for m in net.keys]
    keys = [type(net.keys[0]).model_validate_json(s) for s in stored]
    again = aggregate(net.config, keys, [wire(m) for m in net.masked], [wire(m) for m in net.unmasks],
                      verify_keys=net.pinned)  # fmt: skip
    assert np.array_equal(again.total, live.total) and again.contributors == live.contributors


def test_stages_run_in_order_and_secrets_are_forgotten(network: Make, rng: np.random.Generator) -> None:
    net = network(3, 4)
    _, vectors = _floats(net, rng)
    with pytest.raises(SecAggError, match="stage 'keys'"):
        net.node("h00").masked_input(vectors["h00"], [])
    keys = net.advertise()
    net.share_keys(keys)
    with pytest.raises(SecAggError, match="stage 'shared'"):
        net.node("h00").share_keys(keys)
    net.masked_input(vectors)
    state = net.states["h00"]
    assert state["stage"] == "masked"
    assert state["c_private"] is None and state["s_private"] is None and state["b_seed"] is None
    with pytest.raises(SecAggError, match="stage 'masked'"):
        net.node("h00").masked_input(vectors["h00"], [])
    with pytest.raises(InputError, match="field state"):
        Participant.from_state({**state, "stage": "bogus"}, net.signing["h00"])


def test_a_masked_input_alone_reveals_nothing_of_its_input(network: Make) -> None:
    net = network(5, 200)
    x = {n: net.config.encode(np.zeros(200)) for n in net.names}  # all-zero inputs: the worst case
    net.run(x)
    for message in net.masked:
        y = decode_vector(message.vector, 200)
        assert np.all(y != 0)  # each word is masked (a zero would have probability 2^-64)
        assert len(np.unique(y)) == 200  # and looks uniform, not structured


def test_a_strict_subset_of_masked_inputs_does_not_sum_to_its_plaintext(
    network: Make, rng: np.random.Generator
) -> None:
    net = network(5, 64, scale=1000)
    values, vectors = _floats(net, rng)
    net.run(vectors)
    by_sender: dict[str, MaskedInput] = {m.sender: m for m in net.masked}
    for subset in (["h00"], ["h00", "h01"], net.names[:4], net.names[1:]):
        partial = np.sum([decode_vector(by_sender[n].vector, 64) for n in subset], axis=0, dtype=np.uint64)
        decoded = net.config.decode(partial)
        assert np.all(np.abs(decoded - _sum(values, subset)) > 1.0)  # off by a mask, not by rounding
