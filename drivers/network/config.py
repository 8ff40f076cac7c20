"""The `network` config section: links and their probes, failover policy, SNMP devices, LAN inventory.

Imports only pydantic and the stdlib so the core can validate a config without pysnmp/scapy/pyroute2.
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network
from pathlib import Path
from typing import Literal, Optional
from urllib.parse import urlsplit

from pydantic import Field, model_validator

from agent.section import SecretFile, Section, repeated

NAME = r"^[A-Za-z0-9_.-]{1,32}$"
IFNAME = r"^[A-Za-z0-9_.:@-]{1,15}$"


class ProbeTarget(Section):
    """One thing a link is probed against; always an IP address so probing never needs DNS."""

    type: Literal["icmp", "tcp", "http", "dns"] = Field(
        "icmp", description="icmp echo, tcp connect, http(s) request or dns query")
    address: IPv4Address = Field(description="IP the probe goes to (for http: the IP to connect to)")
    name: Optional[str] = Field(None, pattern=NAME, description="label in telemetry; default type:address")
    port: Optional[int] = Field(None, ge=1, le=65535, description="tcp: required; http: default from url; dns: 53")
    url: Optional[str] = Field(None, description="http only: http://host/path or https://host/path")
    expect_status: list[int] = Field(default_factory=list, description="http: accepted codes; empty = 200-399")
    verify_tls: bool = Field(True, description="https: check the server's certificate")
    query: str = Field("example.com", pattern=r"^[A-Za-z0-9.-]{1,253}$", description="dns: name to resolve (A)")
    interval_s: Optional[float] = Field(None, ge=0.1, le=300, description="default: the link's interval_s")
    timeout_s: Optional[float] = Field(None, ge=0.05, le=30, description="default: the link's timeout_s")

    @model_validator(mode="after")
    def _per_type(self) -> ProbeTarget:
        if self.type == "tcp" and self.port is None:
            raise ValueError("a tcp probe needs port")
        if self.type == "http":
            if not self.url:
                raise ValueError("an http probe needs url")
            parts = urlsplit(self.url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError(f"url must be http://host/... or https://host/..., got {self.url!r}")
        elif self.url is not None:
            raise ValueError("url is only for http probes")
        if any(not 100 <= s <= 599 for s in self.expect_status):
            raise ValueError("expect_status holds HTTP status codes (100-599)")
        return self

    @property
    def label(self) -> str:
        if self.name:
            return self.name
        port = f":{self.port}" if self.port and self.type in ("tcp", "http") else ""
        return f"{self.type}:{self.address}{port}"


class Thresholds(Section):
    """When a link counts as down and when as up again; see README "What the thresholds mean"."""

    down_consecutive: int = Field(11, ge=2, le=1000,
                                  description="outage: this many probes in a row (all targets interleaved) "
                                              "unanswered after timeout_s, spanning a majority of targets")
    window_s: float = Field(30.0, ge=2, le=3600, description="sliding window for loss/RTT/jitter")
    down_loss_pct: float = Field(50.0, gt=0, le=100, description="degraded: majority of targets lose >= this")
    down_rtt_ms: float = Field(1500.0, gt=0, description="degraded: majority of targets average RTT >= this")
    up_loss_pct: float = Field(10.0, ge=0, lt=100, description="recovery: majority of targets lose <= this ...")
    up_rtt_ms: float = Field(500.0, gt=0, description="... and average RTT <= this ...")
    up_after_s: float = Field(10.0, ge=0.5, le=3600, description="... over the last up_after_s")
    min_hold_s: float = Field(5.0, ge=0, le=3600, description="a link keeps a new state at least this long")
    min_samples: int = Field(10, ge=1, le=10000, description="answers per target needed to judge loss/RTT")

    @model_validator(mode="after")
    def _hysteresis(self) -> Thresholds:
        if self.up_loss_pct >= self.down_loss_pct:
            raise ValueError("up_loss_pct must be below down_loss_pct (hysteresis)")
        if self.up_rtt_ms >= self.down_rtt_ms:
            raise ValueError("up_rtt_ms must be below down_rtt_ms (hysteresis)")
        return self


BudgetAction = Literal["notify", "defer_bulk", "slow_telemetry", "sparse_probes", "leave_set"]


class BudgetThreshold(Section):
    """A share of a budget and what happens once it is used (until the period ends)."""

    at_pct: float = Field(gt=0, le=1000, description="percent of the budget used")
    period: Literal["any", "daily", "monthly"] = Field(
        "any", description="which budget the percentage is of; any = whichever is more used")
    actions: list[BudgetAction] = Field(
        min_length=1, description="notify: event to the COC; defer_bulk: even urgent bulk (forced clips, urgent "
                                  "release downloads) waits; slow_telemetry: telemetry at its slow rate; "
                                  "sparse_probes: probed at standby_interval_s while not carrying traffic; "
                                  "leave_set: leaves the balance set (standby until needed)")


def _default_thresholds() -> list[BudgetThreshold]:
    return [BudgetThreshold(at_pct=50, actions=["notify"]),
            BudgetThreshold(at_pct=80, actions=["notify", "defer_bulk", "sparse_probes", "slow_telemetry"]),
            BudgetThreshold(at_pct=100, actions=["notify", "defer_bulk", "sparse_probes", "slow_telemetry",
                                                 "leave_set"])]


class DataBudget(Section):
    """Bytes a metered link may carry per day and per billing month, counted on its interface (rx + tx)."""

    daily_mb: Optional[float] = Field(None, gt=0, description="daily budget in MB (10^6 bytes); absent = none")
    monthly_mb: Optional[float] = Field(None, gt=0, description="monthly budget in MB; absent = none")
    billing_day: int = Field(1, ge=1, le=28, description="day of the month the SIM's billing cycle starts")
    thresholds: list[BudgetThreshold] = Field(default_factory=_default_thresholds,
                                              description="what happens at which share of a budget")

    @model_validator(mode="after")
    def _some_budget(self) -> DataBudget:
        if self.daily_mb is None and self.monthly_mb is None:
            raise ValueError("a budget needs daily_mb, monthly_mb or both")
        for th in self.thresholds:
            if th.period == "any":
                continue
            key = "daily_mb" if th.period == "daily" else "monthly_mb"
            if getattr(self, key) is None:
                raise ValueError(f"a {th.period} threshold needs {key}")
        return self


class Policy(Section):
    """Pins matching traffic to one link or keeps it off one (kernel policy rules, first match wins)."""

    name: str = Field(pattern=NAME, description="policy name in `commune-agent links` and logs")
    link: str = Field(pattern=NAME, description="the link the policy is about")
    action: Literal["pin", "avoid"] = Field("pin", description="pin: only by this link; avoid: never by it")
    destination: Optional[IPv4Network] = Field(None, description="destination prefix (e.g. the government data "
                                                                  "network); absent = any")
    source: Optional[IPv4Network] = Field(None, description="LAN source host or subnet (e.g. 192.168.1.20/32, "
                                                             "a camera recorder); absent = any")
    protocol: Optional[Literal["tcp", "udp"]] = Field(None, description="needed with ports")
    ports: Optional[str] = Field(None, pattern=r"^\d{1,5}(-\d{1,5})?$",
                                 description="destination port or range (443, 8000-8100)")
    fallback: bool = Field(False, description="pin: use the other links while this one is down; avoid: use this "
                                              "link when it is the only one up. false = drop rather than leak")

    @model_validator(mode="after")
    def _selectors(self) -> Policy:
        if self.destination is None and self.source is None and self.protocol is None:
            raise ValueError("a policy needs destination, source or protocol/ports")
        if self.ports is not None:
            if self.protocol is None:
                raise ValueError("ports need protocol (tcp or udp)")
            lo, hi = self.port_range
            if not 1 <= lo <= hi <= 65535:
                raise ValueError(f"ports {self.ports!r}: 1-65535, low-high")
        return self

    @property
    def port_range(self) -> tuple[int, int]:
        lo, _, hi = (self.ports or "").partition("-")
        return (int(lo), int(hi or lo)) if lo else (0, 0)


class LinkConfig(Section):
    """One WAN link: where it leaves the box, how it is probed, how much it is preferred."""

    name: str = Field(pattern=NAME, description="link name in events, telemetry and `commune-agent links`")
    interface: str = Field(pattern=IFNAME, description="the interface the link leaves by (eth1, wwan0, ppp0)")
    gateway: Optional[IPv4Address] = Field(None, description="next hop; omit for point-to-point (ppp, wwan)")
    source: IPv4Address = Field(description="this box's address on the link; probes leave from it")
    priority: int = Field(1, ge=0, le=1000, description="lower = preferred (like mwan3 metric); balance links "
                                                          "of the best priority that is up share the traffic")
    weight: int = Field(1, ge=1, le=1000, description="share of new flows among balance links of equal "
                                                       "priority (weight / sum of weights); breaks ties otherwise")
    role: Literal["balance", "standby"] = Field(
        "balance", description="balance: carries traffic while up (with links of equal priority, by weight); "
                               "standby: out of the set until no balance link is up, probed sparsely until then")
    metered: bool = Field(False, description="pay-per-byte (4G): other drivers go frugal while it is in use")
    budget: Optional[DataBudget] = Field(None, description="daily/monthly byte budget of a metered link, counted "
                                                           "on the interface (all hosts), with threshold actions")
    standby_interval_s: float = Field(20.0, ge=1, le=3600,
                                      description="each target's probe interval while the link is not needed "
                                                  "(standby, or sparse_probes from its budget)")
    table: Optional[int] = Field(None, ge=1, le=252, description="policy table for probes; default 100 + position")
    interval_s: float = Field(0.5, ge=0.1, le=300, description="each target is probed this often")
    timeout_s: float = Field(0.75, ge=0.05, le=30, description="unanswered after this = counts toward an outage")
    targets: list[ProbeTarget] = Field(min_length=2,
                                       description="probe targets; at least two, far away and reliable")
    thresholds: Thresholds = Field(Thresholds(), description="when the link counts as down and when as up again")

    @model_validator(mode="after")
    def _checks(self) -> LinkConfig:
        dup = repeated(t.label for t in self.targets)
        if dup:
            raise ValueError(f"probe targets must be unique: {dup}")
        if self.gateway is not None and self.gateway == self.source:
            raise ValueError("gateway and source must differ")
        if self.budget is not None and not self.metered:
            raise ValueError("a data budget is for a metered link (set metered: true)")
        return self


class Hook(Section):
    """A program run on link events with a fixed argv; details arrive in COMMUNE_* env variables."""

    argv: list[str] = Field(min_length=1,
                            description="program (absolute path) and its arguments; never run through a shell")
    events: list[Literal["failover", "failback", "link_down", "link_up"]] = Field(
        default_factory=lambda: ["failover", "failback"], description="link events that run it")
    timeout_s: float = Field(10.0, gt=0, le=600, description="killed if still running after this")

    @model_validator(mode="after")
    def _absolute(self) -> Hook:
        if not self.argv[0].startswith("/"):
            raise ValueError("argv[0] must be an absolute path (hooks never go through a shell or PATH)")
        return self


class FailoverConfig(Section):
    """How the default route follows the link judgements."""

    enabled: bool = Field(True,
                         description="false = judge and report links only, never choose one")
    manage_routes: bool = Field(True, description="false = observe only: judge and report, never touch routes")
    policy_routing: bool = Field(True, description="install `from <source> lookup <table>` so probes leave "
                                                   "by their own link whatever the default route is")
    route_table: int = Field(254, ge=1, le=4294967295, description="table whose default route is managed (main)")
    route_metric: int = Field(0, ge=0, le=4294967295, description="metric of the managed default route")
    rule_priority: int = Field(10000, ge=1, le=32000, description="first ip rule priority for probe policy rules")
    failback_after_s: float = Field(30.0, ge=0, le=86400, description="preferred link healthy this long → failback")
    max_switches_per_hour: int = Field(6, ge=1, le=3600, description="flap damping: voluntary switches per hour")
    flush_conntrack: bool = Field(False, description="drop tracked connections of the dead link on failover")
    l4_hash: bool = Field(True, description="balance by flow (addresses and ports, fib_multipath_hash_policy=1) "
                                            "rather than by address pair")
    sticky: bool = Field(True, description="keep each forwarded connection on the link it started on while that "
                                           "link is up (nftables conntrack marks), whatever the set does")
    pin_agent: bool = Field(True, description="the agent's own traffic (its uid) uses one link, the best unmetered "
                                              "link of the set, so bulk waits only when that one is metered")
    avoid_table_base: int = Field(200, ge=1, le=252, description="tables base+position hold the set without a link "
                                                                 "(for avoid policies)")
    mark_base: int = Field(0x100, ge=1, le=0xFFFF00, description="fwmark of a link's connections is "
                                                                 "base + position (mask 0xffffff)")
    hooks: list[Hook] = Field(default_factory=list, description="programs run on link events")


class SnmpDevice(Section):
    """A switch/router/firewall polled over SNMP v2c or v3 authPriv."""

    name: str = Field(pattern=NAME, description="device name in telemetry and events")
    host: str = Field(min_length=1, max_length=253, description="address or host name of the device")
    port: int = Field(161, ge=1, le=65535, description="SNMP UDP port")
    version: Literal["2c", "3"] = Field("2c", description="2c (community) or 3 (authPriv user)")
    community: Optional[str] = Field(None, min_length=1, description="v2c read community (or community_file)")
    community_file: Optional[SecretFile] = Field(None, description="file holding the v2c community")
    user: Optional[str] = Field(None, min_length=1, description="v3 user (authPriv)")
    auth_protocol: Literal["md5", "sha", "sha224", "sha256", "sha384", "sha512"] = Field(
        "sha", description="v3 authentication protocol")
    auth_key_file: Optional[SecretFile] = Field(None, description="file holding the v3 authentication key")
    priv_protocol: Literal["des", "3des", "aes", "aes192", "aes256"] = Field(
        "aes", description="v3 privacy (encryption) protocol")
    priv_key_file: Optional[SecretFile] = Field(None, description="file holding the v3 privacy key")
    interval_s: float = Field(30.0, ge=1, le=86400, description="poll period")
    timeout_s: float = Field(2.0, gt=0, le=60, description="per request")
    retries: int = Field(1, ge=0, le=10, description="extra tries of an unanswered request")
    interfaces: list[str] = Field(default_factory=list, description="ifName/ifDescr to report; empty = all")

    @model_validator(mode="after")
    def _credentials(self) -> SnmpDevice:
        if self.version == "2c":
            if (self.community is None) == (self.community_file is None):
                raise ValueError("v2c needs exactly one of community, community_file")
            if self.user or self.auth_key_file or self.priv_key_file:
                raise ValueError("user/auth_key_file/priv_key_file are for version 3")
        else:
            if not (self.user and self.auth_key_file and self.priv_key_file):
                raise ValueError("version 3 (authPriv) needs user, auth_key_file and priv_key_file")
            if self.community or self.community_file:
                raise ValueError("community is for version 2c")
        return self


class ScanSubnet(Section):
    cidr: IPv4Network = Field(description="subnet to ARP-scan, at most /20 (e.g. 192.168.1.0/24)")
    interface: str = Field(pattern=IFNAME, description="the LAN interface the subnet is on")

    @model_validator(mode="after")
    def _size(self) -> ScanSubnet:
        if self.cidr.num_addresses > 4096:
            raise ValueError(f"{self.cidr} is too large to ARP-scan (at most /20)")
        return self


class InventoryConfig(Section):
    """ARP scan of the office LAN: who is connected, who appeared, who left."""

    subnets: list[ScanSubnet] = Field(min_length=1, description="LAN subnets to scan")
    interval_s: float = Field(300.0, ge=5, le=86400, description="scan period")
    scan_timeout_s: float = Field(2.0, gt=0, le=30, description="how long a scan waits for ARP answers")
    gone_after_s: float = Field(1800.0, ge=1, le=30 * 86400, description="unseen this long → device_gone")


class NetworkConfig(Section):
    """WAN links and failover, SNMP polling of network gear, LAN inventory."""

    links: list[LinkConfig] = Field(default_factory=list,
                                    description="the WAN links, in any order (priority decides)")
    failover: FailoverConfig = Field(FailoverConfig(), description="how the default route follows the link verdicts")
    report_interval_s: float = Field(10.0, ge=1, le=3600, description="probe telemetry period")
    snmp: list[SnmpDevice] = Field(default_factory=list,
                                   description="switches, routers and firewalls polled over SNMP")
    policies: list[Policy] = Field(default_factory=list,
                                   description="traffic pinned to a link or kept off one, in order")
    metered_report_interval_s: float = Field(60.0, ge=1, le=3600,
                                             description="probe telemetry period under a budget's slow_telemetry")
    inventory: Optional[InventoryConfig] = Field(None, description="ARP scan of the office LAN; absent = off")
    state_file: Path = Field(Path("links.json"), description="live state for `commune-agent links`, "
                                                            "relative to the driver's data dir")

    @model_validator(mode="after")
    def _unique(self) -> NetworkConfig:
        for what, values in (("link names", [x.name for x in self.links]),
                             ("link interfaces", [x.interface for x in self.links]),
                             ("link sources", [str(x.source) for x in self.links]),
                             ("snmp device names", [x.name for x in self.snmp])):
            dup = repeated(values)
            if dup:
                raise ValueError(f"{what} must be unique: {dup}")
        tables = [self.table_of(i) for i in range(len(self.links))]
        if repeated(tables):
            raise ValueError("links' policy tables must differ")
        if self.failover.route_table in tables and self.failover.policy_routing:
            raise ValueError("route_table must not be one of the links' probe tables")
        avoid = [self.avoid_table_of(i) for i in range(len(self.links))]
        if set(avoid) & (set(tables) | {self.failover.route_table}) or max(avoid, default=0) > 252:
            raise ValueError("avoid tables (avoid_table_base + position) must not clash with other tables")
        names = {x.name for x in self.links}
        for p in self.policies:
            if p.link not in names:
                raise ValueError(f"policy {p.name}: no link named {p.link!r}")
        dup = repeated(p.name for p in self.policies)
        if dup:
            raise ValueError(f"policy names must be unique: {dup}")
        if len(self.policies) > 90:
            raise ValueError("at most 90 policies")
        return self

    def avoid_table_of(self, index: int) -> int:
        """The table holding the balance set without link `index` (for avoid policies)."""
        return self.failover.avoid_table_base + index

    def table_of(self, index: int) -> int:
        """The policy routing table a link's probes use."""
        link = self.links[index]
        return link.table if link.table is not None else 100 + index

