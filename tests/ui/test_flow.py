"""AppTest: the whole path of a unit's demand through the pages (art. 21-23), across four sign-ins.

analyst files -> reviewer assesses risk and approves -> admin creates the subscription and
signs for the operator -> unit admin signs both agreements (activates) -> credentials issued.
"""

from __future__ import annotations

from streamlit.testing.v1 import AppTest

from domain.licensing import Subscription
from domain.parties import ApplicationUnit
from domain.products import DataProduct
from marketplace.bootstrap import build
from marketplace.config import Config
from marketplace.demo.seed import credit_code
from tests.ui.helpers import choose, click, ok, open_page, sign_in, submit, successes

UNIT = "包头智慧出行科技有限公司"
PRODUCT = "城市用水统计 Water use by district"


def test_art21_to_art23_demand_to_active_subscription_and_credentials(app: AppTest, store: Config) -> None:
    product_id = str(DataProduct.create_id(PRODUCT))
    sign_in(app, "mobility0.analyst")
    open_page(app, "Unit portal")
    app.multiselect(key="da_products").set_value([product_id]).run()
    app.text_area(key="da_scenario").input("Plan water mains maintenance crews per district and month")
    app.text_input(key="da_purpose").input("maintenance planning")
    app.text_area(key="da_controls").input("results stay in the sandbox\nnamed analysts only")
    submit(app, "File application")
    assert "Application filed" in " ".join(successes(app))

    sign_in(app, "reviewer.wang")
    open_page(app, "Operator console")
    choose(app, "ar_app", lambda label: UNIT in label and "submitted" in label)
    app.text_input(key="ar_notes").input("district aggregates only")
    submit(app, "Record assessment")
    choose(app, "dc_app", lambda label: UNIT in label and "under_review" in label)
    app.text_input(key="dc_reason").input("purpose and controls adequate")
    submit(app, "Decide")
    assert "Application decided." in successes(app)

    sign_in(app, "admin.zhao")
    open_page(app, "Operator console")
    choose(app, "cs_offer", lambda label: UNIT in label and PRODUCT in label)
    app.text_input(key="cs_plan").input("per_call")
    submit(app, "Create subscription")
    subscription_id = _subscription(store).id
    click(app, f"osign_{subscription_id}_service")
    click(app, f"osign_{subscription_id}_confidentiality")

    sign_in(app, "mobility0.admin")
    open_page(app, "Unit portal")
    click(app, f"sign_{subscription_id}_service")
    click(app, f"sign_{subscription_id}_confidentiality")
    assert any(m.label == "Queries left this month" for m in app.metric)
    assert _subscription(store).is_active

    app.text_input(key="ic_label").input("analysis notebook")
    app.multiselect(key="ic_subs").set_value([app.multiselect(key="ic_subs").options[0]])
    submit(app, "Issue credentials")
    issued = " ".join(successes(app))
    assert "Client id" in issued and "secret" in issued
    ok(app)


def _subscription(store: Config) -> Subscription:
    """The unit's subscription to the product, as the store has it."""
    mp = build(store)
    try:
        unit = mp.parties.get(ApplicationUnit, ApplicationUnit.create_id(credit_code(0)))
        subs = [mp.licensing.get(Subscription, s) for s in unit.subscription_ids]
        return next(s for s in subs if s.product_id == DataProduct.create_id(PRODUCT))
    finally:
        mp.close()
