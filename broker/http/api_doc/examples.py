"""Examples in the OpenAPI document: the shipped channels' example notices (``policies/examples``,
copied here because that directory is not part of the installed package) and answers shaped as the
broker gives them. ``tests/integration/test_openapi.py`` checks that the notices equal the files in
``policies/examples`` and that every example validates against its schema."""

from __future__ import annotations

from typing import Any

NOTICE_EXAMPLES: dict[str, dict[str, Any]] = {
    "hate-incident": {
        "channel": "hate-incident",
        "jurisdiction": "me-danilovgrad",
        "severity": "medium",
        "subject": "Graffiti on a place of worship in Danilovgrad",
        "body": {
            "incident_date": "2026-11-22",
            "category": "religious",
            "target_type": "place-of-worship",
            "community_tension": "medium",
            "follow_up_requested": True,
        },
    },
    "information-request": {
        "channel": "information-request",
        "jurisdiction": "al-shkoder",
        "severity": "low",
        "subject": "Support available for returning families",
        "to": ["al-mb"],
        "requesting_role": "al-shkoder.pcve-focal-point",
        "body": {
            "topic": "returnee-support",
            "question": (
                "Which national programmes can the municipality draw on for psychosocial support"
                " of returning families?"
            ),
        },
    },
    "returnee-repatriation": {
        "channel": "returnee-repatriation",
        "jurisdiction": "mk-kumanovo",
        "severity": "high",
        "subject": "Repatriation of two families to Kumanovo",
        "body": {
            "adults": 3,
            "children": 5,
            "arrival_window": {"from": "2026-12-14", "until": "2026-12-20"},
            "support_needs": ["psychosocial", "education", "health", "housing"],
            "agency_liaison_role": "mk-mvr.liaison-officer",
        },
    },
    "threat-assessment": {
        "channel": "threat-assessment",
        "jurisdiction": "ba-fbih-ks",
        "severity": "medium",
        "subject": "Threat assessment for Sarajevo Canton over the holiday period",
        "body": {
            "threat_level": "moderate",
            "assessment_period": {"from": "2026-12-20", "until": "2027-01-10"},
            "sectors": ["public-gatherings", "places-of-worship"],
            "recommended_measures": ["Coordinate event security with the cantonal police."],
            "agency_liaison_role": "ba-fbih-ks-mup.liaison-officer",
        },
    },
}
