"""cluster.yaml: Ray's own validator accepts it offline, and it says what the GPU cluster must be.

Nothing here contacts AWS or starts Ray: `prepare_config` only merges the AWS provider's defaults file
shipped with Ray, and `validate_config` checks the result against Ray's JSON schema, as `ray up` does
before it talks to EC2.
"""

from __future__ import annotations

import copy
import re
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from ray.autoscaler._private.util import prepare_config, validate_config

ROOT = Path(__file__).resolve().parent.parent
CLUSTER_YAML = ROOT / "cluster.yaml"
SHARED = "/mnt/noisylab"  # the README's `--storage /mnt/noisylab/studies` lives under it
WORLD = ("0.0.0.0/0", "::/0")
# GPUs per instance (AWS's accelerated-computing specifications) for the types a config may name.
GPUS_PER_INSTANCE = {
    "g5.xlarge": 1,
    "g5.2xlarge": 1,
    "g5.4xlarge": 1,
    "g5.12xlarge": 4,
    "g5.48xlarge": 8,
    "g6.xlarge": 1,
    "g6.12xlarge": 4,
    "p4d.24xlarge": 8,
}

Config = dict[str, Any]


def _raw() -> Config:
    loaded = yaml.safe_load(CLUSTER_YAML.read_text())
    assert isinstance(loaded, dict)
    return loaded


def _prepared(raw: Config) -> Config:
    """What `ray up` does before any cloud call: merge the provider defaults, then validate."""
    config = prepare_config(copy.deepcopy(raw))
    validate_config(config)
    return config


def _pyproject() -> Config:
    with open(ROOT / "pyproject.toml", "rb") as f:
        return tomllib.load(f)


def _pinned(name: str) -> str:
    """The exact version pyproject.toml pins for `name` (`name[extras]==X`)."""
    for dep in _pyproject()["project"]["dependencies"]:
        req = Requirement(dep)
        if req.name == name:
            (spec,) = req.specifier
            assert spec.operator == "==", f"{dep}: expected an exact pin"
            return spec.version
    raise AssertionError(f"{name} is not a dependency in pyproject.toml")


def _worker_types(config: Config) -> dict[str, Config]:
    return {k: v for k, v in config["available_node_types"].items() if k != config["head_node_type"]}


def _node_names(config: Config) -> list[str]:
    return list(config["available_node_types"])


def _is_head(config: Config, name: str) -> bool:
    return bool(name == config["head_node_type"])


def _setup_commands(config: Config, name: str) -> list[str]:
    """Setup commands a node of this type runs (a prepared config; a node type's own list wins)."""
    if _is_head(config, name):
        return list(config["head_setup_commands"])
    return list(
        config["available_node_types"][name].get("worker_setup_commands", config["worker_setup_commands"])
    )


def _initialization_commands(config: Config, name: str) -> list[str]:
    """Host commands before Docker starts (the head always takes the global list, as `ray up` does)."""
    if _is_head(config, name):
        return list(config["initialization_commands"])
    node = config["available_node_types"][name]
    return list(node.get("initialization_commands", config["initialization_commands"]))


def _docker(config: Config, name: str) -> tuple[str, list[str]]:
    """(image, docker run options) of a node type, with the per-type overrides Ray applies."""
    docker = config["docker"]
    options = list(docker.get("run_options", []))
    if _is_head(config, name):
        return docker.get("head_image", docker["image"]), options + docker.get("head_run_options", [])
    own = config["available_node_types"][name].get("docker", {})
    image = own.get("worker_image", docker.get("worker_image", docker["image"]))
    return image, options + own.get("worker_run_options", docker.get("worker_run_options", []))


def world_open_ports(config: Config) -> set[int | str]:
    """Ports the config's security-group rules open to any address ("all" for every protocol/port)."""
    opened: set[int | str] = set()
    for rule in config["provider"].get("security_group", {}).get("IpPermissions", []):
        cidrs = [r.get("CidrIp") for r in rule.get("IpRanges", [])]
        cidrs += [r.get("CidrIpv6") for r in rule.get("Ipv6Ranges", [])]
        if not any(c in WORLD for c in cidrs):
            continue
        if str(rule.get("IpProtocol")) == "-1" or rule.get("FromPort", -1) == -1:
            opened.add("all")
        else:
            opened.update(range(int(rule["FromPort"]), int(rule["ToPort"]) + 1))
    return opened


def test_ray_validator_accepts_the_config() -> None:
    config = _prepared(_raw())
    assert config["provider"]["type"] == "aws"
    assert config["head_node_type"] in config["available_node_types"]
    assert config["available_node_types"][config["head_node_type"]]["max_workers"] == 0


def _misspell_top_level(c: Config) -> None:
    c["setup_comands"] = c.pop("setup_commands")


def _misspell_node_key(c: Config) -> None:
    node = next(iter(_worker_types(c).values()))
    node["min_worker"] = node.pop("min_workers")


def _misspell_docker_key(c: Config) -> None:
    c["docker"]["pull_before_rn"] = c["docker"].pop("pull_before_run")


def _fractional_gpu_resource(c: Config) -> None:
    next(iter(_worker_types(c).values()))["resources"]["GPU"] = 0.5


def _unknown_head_type(c: Config) -> None:
    c["head_node_type"] = "no-such-type"


@pytest.mark.parametrize(
    ("break_it", "error"),
    [
        (_misspell_top_level, jsonschema.ValidationError),
        (_misspell_node_key, jsonschema.ValidationError),
        (_misspell_docker_key, jsonschema.ValidationError),
        (_fractional_gpu_resource, jsonschema.ValidationError),
        (_unknown_head_type, ValueError),
    ],
)
def test_ray_validator_rejects_a_broken_copy(
    break_it: Callable[[Config], None], error: type[Exception]
) -> None:
    broken = _raw()
    break_it(broken)
    with pytest.raises(error):
        _prepared(broken)


def test_every_node_runs_the_ray_gpu_image_of_the_pinned_version() -> None:
    config = _prepared(_raw())
    ray_version = _pinned("ray")
    requires_python = SpecifierSet(_pyproject()["project"]["requires-python"])
    for name in _node_names(config):
        image, _ = _docker(config, name)
        # Pinned by content next to the tag. The digest is 64 hex digits once filled; until then the
        # documented placeholder keeps the reference invalid, so no unpinned image is ever pulled.
        m = re.fullmatch(
            r"rayproject/ray:(?P<ray>[^-]+)-py(?P<major>3)(?P<minor>\d+)-gpu"
            r"@sha256:(?P<digest>[0-9a-f]{64}|IMAGE_DIGEST)",
            image,
        )
        assert m, f"{name}: {image} is not a rayproject/ray GPU image"
        assert m["ray"] == ray_version, f"{name}: image has Ray {m['ray']}, pyproject pins {ray_version}"
        assert f"{m['major']}.{m['minor']}" in requires_python, f"{name}: {image} vs {requires_python}"


def test_gpu_workers_declare_their_gpus_and_scale_from_zero() -> None:
    config = _prepared(_raw())
    head = config["available_node_types"][config["head_node_type"]]
    assert head["resources"].get("GPU", 0) == 0, "the head trains nothing"
    workers = _worker_types(config)
    assert workers, "no worker node types"
    for name, node in workers.items():
        instance = node["node_config"]["InstanceType"]
        assert instance in GPUS_PER_INSTANCE, f"{name}: {instance} is not a known GPU instance type"
        assert node["resources"].get("GPU") == GPUS_PER_INSTANCE[instance], f"{name}: GPUs of {instance}"
        assert node["min_workers"] == 0, f"{name}: an idle cluster must cost only its head"
        assert 1 <= node["max_workers"] <= config["max_workers"], name


def test_every_node_mounts_the_same_shared_results_path() -> None:
    config = _prepared(_raw())
    mount = re.compile(rf"\bmount\b[^;&|]*\s{re.escape(SHARED)}(?=[\s;&|]|$)")
    for name in _node_names(config):
        host = " ".join(_initialization_commands(config, name))
        assert mount.search(host), f"{name}: no mount onto {SHARED} on the host"
        _, options = _docker(config, name)
        assert f"-v {SHARED}:{SHARED}" in options, f"{name}: {SHARED} is not handed to the container"


def test_setup_installs_noisylab_from_the_synced_working_tree() -> None:
    config = _prepared(_raw())
    # `ray up` runs from the repository root, so the local side "." is this checkout.
    synced = [remote for remote, local in config["file_mounts"].items() if (ROOT / local).resolve() == ROOT]
    assert len(synced) == 1, f"the working tree is not a file mount: {config['file_mounts']}"
    assert (ROOT / "pyproject.toml").is_file()
    # torch is pinned exactly; on the GPU image pip must find the CUDA build of that version.
    assert _pinned("torch") and _pinned("torchvision")
    install = re.compile(rf"\bpip install -e {re.escape(synced[0])}(\s|$)")
    # The CUDA index serves torch alone (--index-url, its own step); no index is added for everything.
    torch_step = re.compile(
        rf"\bpip install torch=={re.escape(_pinned('torch'))} "
        rf"torchvision=={re.escape(_pinned('torchvision'))} "
        r"--index-url https://download\.pytorch\.org/whl/cu\d+$"
    )
    for name in _node_names(config):
        commands = _setup_commands(config, name)
        assert any(install.search(c) for c in commands), f"{name}: noisylab is not installed: {commands}"
        torch_at = [i for i, c in enumerate(commands) if torch_step.search(c)]
        noisylab_at = [i for i, c in enumerate(commands) if install.search(c)]
        assert torch_at and torch_at[0] < noisylab_at[0], f"{name}: torch is not installed first: {commands}"
        assert not any("--extra-index-url" in c for c in commands), f"{name}: an extra index for all"


def test_imds_needs_a_token_and_stays_on_the_host() -> None:
    config = _prepared(_raw())
    for name, node in config["available_node_types"].items():
        options = node["node_config"].get("MetadataOptions", {})
        assert options.get("HttpTokens") == "required", f"{name}: IMDSv1 is on"
        assert options.get("HttpPutResponseHopLimit") == 1, f"{name}: containers can reach IMDS"


def test_the_shared_store_is_encrypted_in_transit_and_not_world_writable() -> None:
    config = _prepared(_raw())
    for name in _node_names(config):
        host = " ".join(_initialization_commands(config, name))
        assert re.search(rf"\bmount -t efs -o (\S*,)?tls\b[^;&|]*\s{re.escape(SHARED)}\b", host), name
        modes = re.findall(r"chmod (\d{3,4}) " + re.escape(SHARED), host)
        assert modes and all(int(m[-1]) == 0 for m in modes), f"{name}: {SHARED} open to others: {modes}"


def test_no_port_but_ssh_is_open_to_the_internet() -> None:
    config = _prepared(_raw())
    assert world_open_ports(config) <= {22}
    for name, node in config["available_node_types"].items():
        # A group of one's own could open anything and cannot be checked offline: use Ray's, which
        # allows SSH plus traffic between the cluster's nodes, and the rules above.
        assert "SecurityGroupIds" not in node["node_config"], name
        assert "NetworkInterfaces" not in node["node_config"], name


@pytest.mark.parametrize(
    ("rule", "found"),
    [
        (
            {"IpProtocol": "tcp", "FromPort": 8265, "ToPort": 8265, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]},
            {8265},
        ),
        (
            {"IpProtocol": "tcp", "FromPort": 6379, "ToPort": 6380, "Ipv6Ranges": [{"CidrIpv6": "::/0"}]},
            {6379, 6380},
        ),
        ({"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}, {"all"}),
        (
            {"IpProtocol": "tcp", "FromPort": 8265, "ToPort": 8265, "IpRanges": [{"CidrIp": "10.0.0.0/16"}]},
            set(),
        ),
    ],
)
def test_the_port_check_sees_a_rule_that_opens_the_dashboard(rule: Config, found: set[int | str]) -> None:
    opened = _raw()
    opened["provider"]["security_group"]["IpPermissions"] = [rule]
    config = _prepared(opened)  # Ray's schema accepts it: only this check stands in the way
    assert world_open_ports(config) == found


def test_ray_starts_with_token_authentication_on_every_node() -> None:
    config = _prepared(_raw())
    token_mounts = [r for r, local in config["file_mounts"].items() if local == "~/.ray/auth_token"]
    assert len(token_mounts) == 1, "the local token is not shipped to the nodes"
    for name in _node_names(config):
        installs = [
            c for c in _setup_commands(config, name) if token_mounts[0] in c and "~/.ray/auth_token" in c
        ]
        assert installs, f"{name}: the token is not put where Ray looks for it"
        joined = " ".join(_setup_commands(config, name))
        assert f"chmod 600 {token_mounts[0]}" in joined, f"{name}: the synced token is readable by others"
        assert "install -m 600" in joined or "chmod 600 ~/.ray/auth_token" in joined, name
    head = " ".join(config["head_start_ray_commands"])
    worker = " ".join(config["worker_start_ray_commands"])
    for start in (head, worker):
        assert start.count("ray start") == start.count("RAY_AUTH_MODE=token ray start") == 1, start
    assert "--head --port=6379" in head
    assert "--autoscaling-config=~/ray_bootstrap_config.yaml" in head
    assert "--address=$RAY_HEAD_IP:6379" in worker
