"""How booth aggregates are stored in MongoDB, and how stored documents become
domain objects and API messages."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from booth.domain import (
    BoothQuota,
    BoothType,
    ExporterProfile,
    Fair,
    FairStatus,
    Phase,
    Product,
    ScoringSheet,
    Zone,
)
from chuhai.booth.v1 import resources_pb2 as pb
from runtime.adapters.timestamps import timestamp

Document = dict[str, Any]


def profile_document(profile: ExporterProfile) -> Document:
    return {
        "name": profile.name,
        "district": profile.district,
        "industry": profile.industry,
        "main_products": [{"name": p.name, "hs_code": p.hs_code} for p in profile.main_products],
        "export_turnover_usd": profile.export_turnover_usd,
        "specialised_innovative": profile.specialised_innovative,
        "brand_owner": profile.brand_owner,
        "high_tech_enterprise": profile.high_tech_enterprise,
        "past_fairs": list(profile.past_fairs),
    }


def profile_from(doc: Document) -> ExporterProfile:
    return ExporterProfile(
        name=doc["name"],
        district=doc["district"],
        industry=doc["industry"],
        main_products=tuple(Product(p["name"], p["hs_code"]) for p in doc["main_products"]),
        export_turnover_usd=doc["export_turnover_usd"],
        specialised_innovative=doc["specialised_innovative"],
        brand_owner=doc["brand_owner"],
        high_tech_enterprise=doc["high_tech_enterprise"],
        past_fairs=tuple(doc["past_fairs"]),
    )


def exporter_message(doc: Document) -> pb.Exporter:
    return pb.Exporter(
        credit_code=doc["_id"],
        name=doc["name"],
        district=doc["district"],
        industry=doc["industry"],
        main_products=[
            pb.Product(name=p["name"], hs_code=p["hs_code"]) for p in doc["main_products"]
        ],
        export_turnover_usd=doc["export_turnover_usd"],
        specialised_innovative=doc["specialised_innovative"],
        brand_owner=doc["brand_owner"],
        high_tech_enterprise=doc["high_tech_enterprise"],
        past_fairs=doc["past_fairs"],
        registered_at=timestamp(doc["registered_at"]),
        updated_at=timestamp(doc["updated_at"]),
    )


def fair_document(fair: Fair, created_at: datetime) -> Document:
    return {
        "_id": fair.fair_id,
        "name": fair.name,
        "organiser": fair.organiser,
        "session": fair.session,
        "venue": fair.venue,
        "phases": [
            {"name": p.name, "starts_on": p.starts_on.isoformat(), "ends_on": p.ends_on.isoformat()}
            for p in fair.phases
        ],
        "zones": [
            {"code": z.code, "name": z.name, "hs_headings": sorted(z.hs_headings)}
            for z in fair.zones
        ],
        "quotas": [
            {
                "booth_type": int(q.booth_type),
                "quota": q.quota,
                "application_deadline": q.application_deadline,
                "allocation_deadline": q.allocation_deadline,
                "fee_fen": q.fee_fen,
            }
            for q in fair.quotas
        ],
        "opens_at": fair.opens_at,
        "scoring_sheet": dict(vars(fair.scoring_sheet)),
        "status": int(fair.status),
        "created_at": created_at,
    }


def fair_from(doc: Document) -> Fair:
    return Fair(
        fair_id=doc["_id"],
        name=doc["name"],
        organiser=doc["organiser"],
        session=doc["session"],
        venue=doc["venue"],
        phases=tuple(
            Phase(p["name"], date.fromisoformat(p["starts_on"]), date.fromisoformat(p["ends_on"]))
            for p in doc["phases"]
        ),
        zones=tuple(Zone(z["code"], z["name"], frozenset(z["hs_headings"])) for z in doc["zones"]),
        quotas=tuple(
            BoothQuota(
                BoothType(q["booth_type"]),
                q["quota"],
                q["application_deadline"],
                q["allocation_deadline"],
                q["fee_fen"],
            )
            for q in doc["quotas"]
        ),
        opens_at=doc["opens_at"],
        scoring_sheet=ScoringSheet(**doc["scoring_sheet"]),
        status=FairStatus(doc["status"]),
    )


def fair_message(fair: Fair) -> pb.Fair:
    return pb.Fair(
        fair_id=fair.fair_id,
        name=fair.name,
        organiser=fair.organiser,
        session=fair.session,
        venue=fair.venue,
        phases=[
            pb.Phase(name=p.name, starts_on=p.starts_on.isoformat(), ends_on=p.ends_on.isoformat())
            for p in fair.phases
        ],
        zones=[
            pb.Zone(code=z.code, name=z.name, hs_headings=sorted(z.hs_headings)) for z in fair.zones
        ],
        booth_quotas=[
            pb.BoothQuota(
                booth_type=int(q.booth_type),
                quota=q.quota,
                application_deadline=timestamp(q.application_deadline),
                allocation_deadline=timestamp(q.allocation_deadline),
                fee_fen=q.fee_fen,
            )
            for q in fair.quotas
        ],
        scoring_sheet=pb.ScoringSheet(**vars(fair.scoring_sheet)),
        status=int(fair.status),
        opens_at=timestamp(fair.opens_at),
    )


def application_message(doc: Document, waitlist_position: int = 0) -> pb.BoothApplication:
    return pb.BoothApplication(
        application_id=doc["_id"],
        fair_id=doc["fair_id"],
        credit_code=doc["credit_code"],
        booth_type=doc["booth_type"],
        main_product_hs_code=doc["hs_code"],
        zone_code=doc["zone_code"],
        state=doc["state"],
        score=doc["score"],
        booth_number=doc.get("booth_number", ""),
        penalty_fen=doc.get("penalty_fen", 0),
        submitted_at=timestamp(doc["submitted_at"]),
        history=[
            pb.Transition(state=t["state"], at=timestamp(t["at"]), by=t["by"], reason=t["reason"])
            for t in doc["history"]
        ],
        waitlist_position=waitlist_position,
    )
