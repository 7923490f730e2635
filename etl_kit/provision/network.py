"""Step ``network``: VPC, subnets, the security group and the VPC endpoints.

The workgroup and the Glue connection live in ``vpc_id`` (or the account's default VPC) and
``subnet_ids`` (or the VPC's subnets). The security group has the self-referencing rule Glue
needs; the interface endpoints share it. When job 2 sits on the connection (``network_placement``
``one_az`` or ``every_az``) and ``create_vpc_endpoints`` is on, the kit adds an S3 gateway endpoint and
interface endpoints for Secrets Manager, the Redshift Data API, STS, Glue and CloudWatch Logs, which a
job attached to the connection needs when the subnets have no NAT (:func:`endpoint_subnets`).
Endpoints that already exist for a service are used as they are and never deleted by the kit.
"""

from __future__ import annotations

from typing import Any

from etl_kit.config import Settings
from etl_kit.exceptions import ConfigError
from etl_kit.provision.base import Ctx, Resource, Step, tag_list

__all__ = ["STEP", "resolve", "INTERFACE_SERVICES", "endpoint_subnets", "planned_endpoints"]

INTERFACE_SERVICES = ("secretsmanager", "redshift-data", "sts", "glue", "logs")
[TAG] = tag_list()


def _vpc(ctx: Ctx) -> str:
    ec2 = ctx.client("ec2")
    if ctx.settings.vpc_id:
        vpcs = ec2.describe_vpcs(Filters=[{"Name": "vpc-id", "Values": [ctx.settings.vpc_id]}])["Vpcs"]
        if not vpcs:
            raise ConfigError(f"key 'vpc_id': VPC {ctx.settings.vpc_id!r} not found in {ctx.settings.region}")
        return str(vpcs[0]["VpcId"])
    vpcs = ec2.describe_vpcs(Filters=[{"Name": "isDefault", "Values": ["true"]}])["Vpcs"]
    if not vpcs:
        raise ConfigError(f"key 'vpc_id': no default VPC in {ctx.settings.region}; set vpc_id and subnet_ids in params")
    return str(vpcs[0]["VpcId"])


def _subnets(ctx: Ctx, vpc: str) -> list[dict[str, Any]]:
    ec2 = ctx.client("ec2")
    filters = [{"Name": "vpc-id", "Values": [vpc]}]
    if ctx.settings.subnet_ids:
        filters.append({"Name": "subnet-id", "Values": list(ctx.settings.subnet_ids)})
    subnets = sorted(ec2.describe_subnets(Filters=filters)["Subnets"], key=lambda x: (x["AvailabilityZone"],
                                                                                        x["SubnetId"]))
    missing = set(ctx.settings.subnet_ids) - {x["SubnetId"] for x in subnets}
    if missing:
        raise ConfigError(f"key 'subnet_ids': {sorted(missing)} not found in VPC {vpc}")
    if not subnets:
        raise ConfigError(f"key 'subnet_ids': VPC {vpc} has no subnets")
    return subnets


def _group(ctx: Ctx, vpc: str) -> dict[str, Any] | None:
    groups = ctx.client("ec2").describe_security_groups(
        Filters=[{"Name": "vpc-id", "Values": [vpc]}, {"Name": "group-name", "Values": [ctx.arns.security_group]}]
    )["SecurityGroups"]
    return dict(groups[0]) if groups else None


def resolve(ctx: Ctx) -> dict[str, Any]:
    """The VPC, subnets (one per AZ first), their first AZ and the security group id (None if absent)."""
    vpc = _vpc(ctx)
    subnets = _subnets(ctx, vpc)
    group = _group(ctx, vpc)
    return {
        "vpc_id": vpc,
        "subnet_ids": [x["SubnetId"] for x in subnets],
        "availability_zone": subnets[0]["AvailabilityZone"],
        "security_group_id": group["GroupId"] if group else None,
    }


def _endpoints(ctx: Ctx, vpc: str, service: str) -> list[dict[str, Any]]:
    r = ctx.client("ec2").describe_vpc_endpoints(
        Filters=[{"Name": "vpc-id", "Values": [vpc]}, {"Name": "service-name", "Values": [service]}]
    )
    return [e for e in r.get("VpcEndpoints", []) if e.get("State", "").lower() not in ("deleted", "deleting")]


def _security_group(ctx: Ctx, vpc: str) -> Resource:
    ec2 = ctx.client("ec2")
    name = ctx.arns.security_group

    def read() -> dict[str, Any] | None:
        g = _group(ctx, vpc)
        if g is None:
            return None
        ok = any(
            p.get("IpProtocol") in ("tcp", "-1")
            and any(pair.get("GroupId") == g["GroupId"] for pair in p.get("UserIdGroupPairs", []))
            for p in g.get("IpPermissions", [])
        )
        return {"SelfReferencingRule": ok}

    def add_rule(_: Any = None) -> None:
        g = _group(ctx, vpc)
        assert g is not None, "the rule is added to a group that was just read or created"
        pair = {"GroupId": g["GroupId"], "Description": "Glue and endpoints (self)"}
        ec2.authorize_security_group_ingress(
            GroupId=g["GroupId"], IpPermissions=[{"IpProtocol": "tcp", "FromPort": 0, "ToPort": 65535,
                                                  "UserIdGroupPairs": [pair]}])

    def create() -> None:
        ec2.create_security_group(
            GroupName=name, VpcId=vpc, Description="etl-kit: Redshift workgroup, Glue connection, VPC endpoints",
            TagSpecifications=[{"ResourceType": "security-group", "Tags": [TAG]}],
        )
        add_rule()

    def delete() -> None:
        g = _group(ctx, vpc)
        if g is not None:
            ec2.delete_security_group(GroupId=g["GroupId"])

    return Resource("ec2-security-group", name, read=read, desired={"SelfReferencingRule": True}, create=create,
                    update=add_rule, delete=delete, extra={"vpc_id": vpc})


def _endpoint(ctx: Ctx, vpc: str, service: str, kind: str, subnets: list[str], wanted: bool = True) -> Resource:
    """A VPC endpoint for ``service`` (``Gateway``, or ``Interface`` in ``subnets``); ``wanted=False``: one the
    kit created under a placement that needed it, to remove now that none does."""
    ec2 = ctx.client("ec2")

    def create() -> None:
        kw: dict[str, Any] = {
            "VpcEndpointType": kind, "VpcId": vpc, "ServiceName": service,
            "TagSpecifications": [{"ResourceType": "vpc-endpoint", "Tags": [TAG]}],
        }
        if kind == "Gateway":
            tables = ec2.describe_route_tables(Filters=[{"Name": "vpc-id", "Values": [vpc]}])["RouteTables"]
            kw["RouteTableIds"] = sorted(t["RouteTableId"] for t in tables)
        else:
            g = _group(ctx, vpc)
            assert g is not None, "the network step creates the security group before the endpoints"
            kw.update(SubnetIds=subnets, SecurityGroupIds=[g["GroupId"]], PrivateDnsEnabled=True)
        ec2.create_vpc_endpoint(**kw)

    def delete() -> None:
        mine = [e["VpcEndpointId"] for e in _endpoints(ctx, vpc, service) if TAG in e.get("Tags", [])]
        if mine:
            ec2.delete_vpc_endpoints(VpcEndpointIds=mine)

    desired = {"SubnetIds": sorted(subnets)} if kind == "Interface" and wanted else {}

    def read() -> dict[str, Any] | None:
        found = _endpoints(ctx, vpc, service)
        mine = [e for e in found if TAG in e.get("Tags", [])]
        if not wanted:  # a leftover: only the kit's own endpoints count (it never deletes anyone else's)
            return {} if mine else None
        if not found:
            return None
        # the kit moves only its own endpoint between subnets (a placement change); anyone else's is used as is
        return {"SubnetIds": sorted(mine[0].get("SubnetIds", []))} if mine and desired else dict(desired)

    def move(_: Any) -> None:
        mine = next(e for e in _endpoints(ctx, vpc, service) if TAG in e.get("Tags", []))  # read found it
        have = set(mine.get("SubnetIds", []))
        kw = {"AddSubnetIds": sorted(set(subnets) - have), "RemoveSubnetIds": sorted(have - set(subnets))}
        ec2.modify_vpc_endpoint(VpcEndpointId=mine["VpcEndpointId"], **{k: v for k, v in kw.items() if v})

    return Resource(f"vpc-endpoint-{kind.lower()}", service, read=read, desired=desired, create=create,
                    update=move, delete=delete, extra={"vpc_id": vpc})


def _services(region: str) -> list[tuple[str, str]]:
    return [(f"com.amazonaws.{region}.s3", "Gateway")] + [
        (f"com.amazonaws.{region}.{svc}", "Interface") for svc in INTERFACE_SERVICES
    ]


def _resources(ctx: Ctx) -> list[Resource]:
    vpc = _vpc(ctx)
    subnets = _subnets(ctx, vpc)  # checks subnet_ids on every run, endpoints or not
    out = [_security_group(ctx, vpc)]
    placed = endpoint_subnets(ctx.settings, subnets)
    if not placed:
        return out
    return out + [_endpoint(ctx, vpc, service, kind, placed) for service, kind in _services(ctx.settings.region)]


def _unwanted_endpoints(ctx: Ctx) -> list[Resource]:
    """The kit's endpoints when the placement needs none (switched from one_az / every_az): they bill hourly."""
    vpc = _vpc(ctx)
    if endpoint_subnets(ctx.settings, _subnets(ctx, vpc)):
        return []
    return [_endpoint(ctx, vpc, service, kind, [], wanted=False) for service, kind in _services(ctx.settings.region)]


def endpoint_subnets(settings: Settings, subnets: list[dict[str, Any]]) -> list[str]:
    """The subnets that get the interface endpoints under ``network_placement`` (empty: no endpoints).

    ``none``: job 2 runs outside the VPC, nothing needs them. ``one_az``: the Glue connection's subnet
    (the first, as :func:`resolve` orders them), the only one job 2 ever runs in. ``every_az``: the seed's
    placement, one subnet per availability zone.
    """
    if settings.network_placement == "none" or not settings.create_vpc_endpoints or not subnets:
        return []
    if settings.network_placement == "one_az":
        return [subnets[0]["SubnetId"]]
    one_per_az: dict[str, str] = {}
    for sn in subnets:
        one_per_az.setdefault(sn["AvailabilityZone"], sn["SubnetId"])
    return sorted(one_per_az.values())


def planned_endpoints(ctx: Ctx) -> tuple[int, int]:
    """(interface endpoints, subnets each sits in) that the placement asks for, from the VPC's subnets."""
    placed = endpoint_subnets(ctx.settings, _subnets(ctx, _vpc(ctx)))
    return (len(INTERFACE_SERVICES), len(placed)) if placed else (0, 0)


STEP = Step("network", _resources, legacy=_unwanted_endpoints, inventory=lambda ctx: {"network": resolve(ctx)})
