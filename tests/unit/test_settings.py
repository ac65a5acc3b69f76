"""Settings come from AGENTFIELD_ARQ_* variables only, and bad ones fail loudly."""

from __future__ import annotations

import pytest

from agentfield_arq.core.settings import Settings, from_env
from agentfield_arq.kernel.errors import ConfigurationError


def test_defaults_apply_when_no_variable_is_set() -> None:
    settings = from_env({})
    assert settings == Settings()
    assert settings.retention_s == 86_400
    assert settings.sync_timeout_s == 90.0


def test_variables_are_converted_to_their_field_types() -> None:
    settings = from_env({"AGENTFIELD_ARQ_API_PORT": "9000", "AGENTFIELD_ARQ_SYNC_TIMEOUT_S": "2.5"})
    assert settings.api_port == 9000
    assert settings.sync_timeout_s == 2.5


def test_an_unknown_variable_fails_with_its_name() -> None:
    with pytest.raises(ConfigurationError, match="AGENTFIELD_ARQ_RETENTION"):
        from_env({"AGENTFIELD_ARQ_RETENTION": "5"})


def test_a_malformed_variable_fails_with_its_name() -> None:
    with pytest.raises(ConfigurationError, match="AGENTFIELD_ARQ_API_PORT"):
        from_env({"AGENTFIELD_ARQ_API_PORT": "eighty"})


def test_a_non_positive_limit_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="AGENTFIELD_ARQ_BATCH_MAX_IDS"):
        from_env({"AGENTFIELD_ARQ_BATCH_MAX_IDS": "0"})


def test_other_variables_are_ignored() -> None:
    assert from_env({"PATH": "/bin", "AGENTFIELD_SERVER": "x"}) == Settings()


def test_the_default_recovery_bound_after_a_worker_crash_is_under_a_minute() -> None:
    assert Settings().recovery_bound_s < 60


def test_a_bare_worker_refuses_loopback_and_private_agents() -> None:
    settings = from_env({})
    assert (settings.agent_allow_loopback, settings.agent_allow_private) == (False, False)
    assert settings.agent_allowed_networks == ""


def test_an_allowed_network_that_is_not_a_cidr_fails_with_its_name() -> None:
    with pytest.raises(ConfigurationError, match="AGENTFIELD_ARQ_AGENT_ALLOWED_NETWORKS: 'agents'"):
        from_env({"AGENTFIELD_ARQ_AGENT_ALLOWED_NETWORKS": "10.0.0.0/8, agents"})


def test_the_per_node_cap_defaults_to_half_of_the_fleets_slots() -> None:
    assert from_env({}).node_in_flight_cap == 2000
    assert from_env({"AGENTFIELD_ARQ_WORKERS": "1"}).node_in_flight_cap == 1000
    assert from_env({"AGENTFIELD_ARQ_WORKER_CONCURRENCY": "1"}).node_in_flight_cap == 1
    assert from_env({"AGENTFIELD_ARQ_NODE_MAX_IN_FLIGHT": "5"}).node_in_flight_cap == 5
    with pytest.raises(ConfigurationError, match="AGENTFIELD_ARQ_NODE_MAX_IN_FLIGHT"):
        from_env({"AGENTFIELD_ARQ_NODE_MAX_IN_FLIGHT": "-1"})


def test_an_unusable_sentinel_url_fails_at_start_up_with_the_variables_name() -> None:
    with pytest.raises(ConfigurationError, match=r"AGENTFIELD_ARQ_REDIS_URL: .*names its service"):
        from_env({"AGENTFIELD_ARQ_REDIS_URL": "redis+sentinel://127.0.0.1:26379"})


@pytest.mark.parametrize(
    ("name", "value"), [("REDIS_WAIT_REPLICAS", "-1"), ("REDIS_WAIT_TIMEOUT_MS", "0")]
)
def test_a_replica_wait_out_of_range_is_refused(name: str, value: str) -> None:
    with pytest.raises(ConfigurationError, match=f"AGENTFIELD_ARQ_{name}"):
        from_env({f"AGENTFIELD_ARQ_{name}": value})


def test_the_default_recovery_after_a_lost_worker_takes_seconds() -> None:
    assert Settings().lease_recovery_bound_s <= 5


def test_a_default_call_limit_over_the_most_allowed_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="AGENTFIELD_ARQ_AGENT_MAX_TIMEOUT_S"):
        from_env(
            {"AGENTFIELD_ARQ_AGENT_TIMEOUT_S": "60", "AGENTFIELD_ARQ_AGENT_MAX_TIMEOUT_S": "30"}
        )
