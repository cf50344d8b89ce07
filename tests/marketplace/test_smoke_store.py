from domain.identity import Actor, Role
from marketplace.bootstrap import Marketplace
from domain.parties import ApplicationUnit, credit_code_check_char


def test_register_unit_roundtrip(marketplace: Marketplace) -> None:
    actor = Actor("alice", Role.UNIT_ADMIN, unit_id=ApplicationUnit.create_id("x"))
    code = "91150200MA0N000A1" 
    code = code + credit_code_check_char(code)
    uid = marketplace.parties.register_unit(actor, name="Acme", credit_code=code, kind="company", contact_email="a@b.cn")
    unit = marketplace.parties.get(ApplicationUnit, uid)
    assert unit.members == {"alice": Role.UNIT_ADMIN}
