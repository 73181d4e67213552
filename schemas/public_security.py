"""Public security (entry-exit administration): residence-permit requests and outcomes.

docs/domain.md §2 (public security) and §4.4. The entry-exit counter system publishes
`ResidencePermitApplied` on `publicsecurity.requests.v1`; public security decides against
its own view of the permits and publishes the outcomes on
`publicsecurity.residence-events.v1`.

Subject of every event here: the work-permit number. For an application presented with a
scanned QR token, the counter reads the number from the token's payload; public security
trusts it only once the token's signature and claims say the same.
"""

from __future__ import annotations

from datetime import date
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Literal

from pydantic import AwareDatetime, Field

from schemas.envelope import CloudEvent, Contract, Variant
from schemas.permits import PermitNo

PUBLIC_SECURITY_SOURCE = "/cn/mps/entry-exit"
"""Source of public security's outcomes."""

DESK_SOURCE = "/cn/mps/entry-exit/desk"
"""Source of the officers' decisions (public security's desk, `publicsecurity.decisions.v1`)."""

COUNTER_SOURCE = "/cn/mps/entry-exit/counter"
"""Source of the entry-exit counter system's requests (a front door, with sequences of its own)."""

_TYPE = "cn.mps.entryexit."

ApplicationId = Annotated[
    str,
    Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._:-]+$",
          description="the counter's id of the application; one decision per id"),
]
ResidencePermitNo = Annotated[
    str, Field(min_length=6, max_length=32, description="assigned by public security; opaque")
]


OfficerId = Annotated[
    str,
    Field(min_length=2, max_length=32, pattern=r"^[A-Za-z0-9._-]+$",
          description="the deciding officer's staff id (not a name)"),
]
DecisionReason = Annotated[
    str,
    Field(min_length=3, max_length=200, pattern=r"^[^\x00-\x1f\x7f]+$",
          description="why, in a line: the rule or the facts weighed, never the applicant's "
                      "name, passport or other personal data (docs/domain.md §2 public "
                      "security, Decisions by officers); public security refuses a reason "
                      "that names the holder"),
]


class ApplicationPurpose(StrEnum):
    """A first residence permit after entry, or the extension of one already issued."""

    FIRST = "first"
    EXTENSION = "extension"


class PresentedPermitNo(Variant):
    """The applicant gave the work-permit number (notification letter or permit)."""

    kind: Literal["permit_no"] = "permit_no"
    permit_no: PermitNo


class PresentedQrToken(Variant):
    """The officer scanned the permit QR code on the applicant's e-SSC."""

    kind: Literal["qr_token"] = "qr_token"
    token: str = Field(min_length=16, max_length=4096, description="as scanned, unparsed")
    scanned_at: AwareDatetime = Field(description="when the code was scanned; expiry is "
                                      "checked against this, not against processing time")


Presented = Annotated[PresentedPermitNo | PresentedQrToken, Field(discriminator="kind")]


class ResidenceRejection(StrEnum):
    """Why an application was refused; each names something the applicant can act on."""

    PERMIT_UNKNOWN = "permit_unknown"
    """No work permit with this number (check it, or the permit is not yet synchronized)."""
    PERMIT_NOT_ACTIVE = "permit_not_active"
    """Only the notification letter exists: verify documents on site so the permit is issued."""
    PERMIT_CANCELLED = "permit_cancelled"
    PERMIT_EXPIRED = "permit_expired"
    TOKEN_INVALID = "token_invalid"
    """The QR token is forged, damaged, signed by an unknown key, or names another permit."""
    TOKEN_EXPIRED = "token_expired"
    """Refresh the QR code in the e-SSC app and scan again."""
    TOKEN_REUSED = "token_reused"
    """This QR code was accepted before for this purpose: refresh it in the app, scan again."""
    SCAN_TIME_INVALID = "scan_time_invalid"
    """The scan time is not within the leeway of when the application reached the hub: the
    counter's clock is off or the request was held back; scan again."""
    LEGACY_PERMIT_NO_TOKEN = "legacy_permit_no_token"
    """A pre-integration permit has no e-card QR code: present the permit number instead."""
    APPLIED_TOO_LATE = "applied_too_late"
    """More than 30 days after entry (Exit-Entry Administration Law art. 30)."""
    ENTRY_DATE_INVALID = "entry_date_invalid"
    """Entry date missing for a first application, or after the application date."""
    VALIDITY_OUT_OF_RANGE = "validity_out_of_range"
    """The requested period is shorter than 90 days or longer than 5 years (art. 30)."""
    WORK_PERMIT_ENDS_TOO_SOON = "work_permit_ends_too_soon"
    """Limited to the work permit's end, fewer than 90 days remain: extend the permit first."""
    ALREADY_ISSUED = "already_issued"
    """A residence permit for this work permit exists: apply for its extension instead."""
    NO_RESIDENCE_PERMIT = "no_residence_permit"
    """An extension needs a residence permit in force for this work permit."""
    EXTENSION_TOO_LATE = "extension_too_late"
    """An extension is applied for at least 30 days before expiry (art. 32)."""
    NOTHING_TO_EXTEND = "nothing_to_extend"
    """The new end would not be after the current one (the work permit limits it)."""
    DUPLICATE_APPLICATION = "duplicate_application"
    """This application id was already decided; that first decision stands."""


class ResidenceReferralReason(StrEnum):
    """Why an application went to an officer instead of being decided automatically."""

    APPLIED_LATE = "applied_late"
    """More than 30 days after entry (art. 30): an officer weighs the cause of the delay."""


class ResidenceVerdict(StrEnum):
    """An officer's decision on a referred application."""

    ACCEPT = "accept"
    """Decide it as if applied in time: the other rules still apply."""
    REFUSE = "refuse"


# Payloads -------------------------------------------------------------------------------


class ResidencePermitAppliedData(Contract):
    """An application for a work-type residence permit at the entry-exit counter."""

    application_id: ApplicationId
    purpose: ApplicationPurpose = ApplicationPurpose.FIRST
    presented: Presented
    entry_date: date | None = Field(default=None, description="required for a first application")
    applied_on: date
    requested_until: date = Field(description="the end of validity the applicant asks for")


class ResidencePermitIssuedData(Contract):
    """A residence permit was granted, never beyond the work permit's end."""

    application_id: ApplicationId
    permit_no: PermitNo
    residence_permit_no: ResidencePermitNo
    valid_from: date
    valid_until: date
    limited_by_work_permit: bool = Field(
        description="true when the work permit's end cut the requested period short")
    verified_by: Literal["permit_no", "qr_token"]


class ResidencePermitExtendedData(Contract):
    """A residence permit's validity was extended on application."""

    application_id: ApplicationId
    permit_no: PermitNo
    residence_permit_no: ResidencePermitNo
    previous_valid_until: date
    valid_until: date
    limited_by_work_permit: bool


class ResidencePermitRejectedData(Contract):
    """An application was refused, with a reason the applicant can act on."""

    application_id: ApplicationId
    permit_no: str = Field(min_length=1, max_length=64,
                           description="the work-permit number the application named")
    reason: ResidenceRejection
    message: str = Field(min_length=1, max_length=500)


class ResidencePermitCancellationRequiredData(Contract):
    """The work permit was cancelled: the residence permit on it must be cancelled."""

    permit_no: PermitNo
    residence_permit_no: ResidencePermitNo
    work_permit_cancelled_on: date
    cancel_by: date | None = Field(
        description="deadline from the configured policy; null means 'promptly' (no national "
        "deadline is known, docs/domain.md §2 [U])")


ResidenceParticular = Literal["holder.name", "holder.passport_no", "holder.passport_expiry"]
"""A work-permit field that is also a registered particular of the residence permit: the
holder's name and passport (the residence permit is endorsed into the passport)."""


class ResidencePermitChangeRequiredData(Contract):
    """The work permit's record changed a registered particular of the residence permit in
    force: the holder must apply for the change within 10 days (Exit-Entry Administration
    Law art. 33). Public security does not change the residence permit by itself; the change
    is made on that application. Carries which particulars changed, never their values.
    """

    permit_no: PermitNo
    residence_permit_no: ResidencePermitNo
    changed: tuple[ResidenceParticular, ...] = Field(min_length=1)
    changed_on: date = Field(description="the day (China time) the work permit's record "
                             "changed: the authority's event time")
    report_by: date = Field(description="changed_on + 10 days (art. 33)")


class ResidenceApplicationReferredData(Contract):
    """An application goes to an officer; its decision follows (issued or rejected)."""

    application_id: ApplicationId
    permit_no: PermitNo
    reason: ResidenceReferralReason
    message: str = Field(min_length=1, max_length=500)
    decide_by: date = Field(description="applied_on + 15 days: the decision period (art. 30)")


class ResidencePermitCancelledData(Contract):
    """An officer closed a cancellation case: the residence permit is cancelled."""

    permit_no: PermitNo
    residence_permit_no: ResidencePermitNo
    cancelled_on: date
    officer_id: OfficerId
    decided_at: AwareDatetime


class ResidenceApplicationDecidedData(Contract):
    """An officer's decision on a referred application (the desk, decisions topic)."""

    application_id: ApplicationId
    permit_no: PermitNo
    verdict: ResidenceVerdict
    officer_id: OfficerId
    decided_at: AwareDatetime
    reason: DecisionReason


class ResidencePermitCancellationDecidedData(Contract):
    """An officer closes a cancellation case: the residence permit cancelled on a date."""

    permit_no: PermitNo
    residence_permit_no: ResidencePermitNo
    cancelled_on: date = Field(description="not before the work permit's cancellation, not "
                               "after the decision's day (China time)")
    officer_id: OfficerId
    decided_at: AwareDatetime
    reason: DecisionReason


class ResidencePermitExtensionAvailableData(Contract):
    """The work permit was extended: the holder may apply to extend the residence permit.

    Nothing changes until that application is decided (`ResidencePermitExtended`).
    """

    permit_no: PermitNo
    residence_permit_no: ResidencePermitNo
    current_valid_until: date
    may_extend_until: date
    apply_by: date = Field(description="30 days before the current end (art. 32)")


# Events ---------------------------------------------------------------------------------


class ResidencePermitApplied(CloudEvent[ResidencePermitAppliedData]):
    """Request, from the entry-exit counter system."""

    EVENT_TYPE: ClassVar[str] = _TYPE + "ResidencePermitApplied"
    SOURCE: ClassVar[str] = COUNTER_SOURCE
    type: Literal["cn.mps.entryexit.ResidencePermitApplied"]

    def subject_rule(self) -> tuple[str, str] | None:
        """The presented permit number; a token's claim is checked once its signature is."""
        if isinstance(self.data.presented, PresentedPermitNo):
            return "data.presented.permit_no", self.data.presented.permit_no
        return None


class ResidencePermitIssued(CloudEvent[ResidencePermitIssuedData]):
    EVENT_TYPE: ClassVar[str] = _TYPE + "ResidencePermitIssued"
    SOURCE: ClassVar[str] = PUBLIC_SECURITY_SOURCE
    type: Literal["cn.mps.entryexit.ResidencePermitIssued"]

    def subject_rule(self) -> tuple[str, str]:
        """The work permit the decision is about."""
        return "data.permit_no", self.data.permit_no


class ResidencePermitExtended(CloudEvent[ResidencePermitExtendedData]):
    EVENT_TYPE: ClassVar[str] = _TYPE + "ResidencePermitExtended"
    SOURCE: ClassVar[str] = PUBLIC_SECURITY_SOURCE
    type: Literal["cn.mps.entryexit.ResidencePermitExtended"]

    def subject_rule(self) -> tuple[str, str]:
        """The work permit the decision is about."""
        return "data.permit_no", self.data.permit_no


class ResidencePermitRejected(CloudEvent[ResidencePermitRejectedData]):
    EVENT_TYPE: ClassVar[str] = _TYPE + "ResidencePermitRejected"
    # v2 adds the reasons token_reused and scan_time_invalid (schemas/compatibility.toml).
    VERSION: ClassVar[int] = 2
    SOURCE: ClassVar[str] = PUBLIC_SECURITY_SOURCE
    type: Literal["cn.mps.entryexit.ResidencePermitRejected"]

    def subject_rule(self) -> tuple[str, str]:
        """The work permit the decision is about."""
        return "data.permit_no", self.data.permit_no


class ResidencePermitCancellationRequired(CloudEvent[ResidencePermitCancellationRequiredData]):
    EVENT_TYPE: ClassVar[str] = _TYPE + "ResidencePermitCancellationRequired"
    SOURCE: ClassVar[str] = PUBLIC_SECURITY_SOURCE
    type: Literal["cn.mps.entryexit.ResidencePermitCancellationRequired"]

    def subject_rule(self) -> tuple[str, str]:
        """The work permit the decision is about."""
        return "data.permit_no", self.data.permit_no


class ResidencePermitExtensionAvailable(CloudEvent[ResidencePermitExtensionAvailableData]):
    EVENT_TYPE: ClassVar[str] = _TYPE + "ResidencePermitExtensionAvailable"
    SOURCE: ClassVar[str] = PUBLIC_SECURITY_SOURCE
    type: Literal["cn.mps.entryexit.ResidencePermitExtensionAvailable"]

    def subject_rule(self) -> tuple[str, str]:
        """The work permit the decision is about."""
        return "data.permit_no", self.data.permit_no


class ResidencePermitChangeRequired(CloudEvent[ResidencePermitChangeRequiredData]):
    EVENT_TYPE: ClassVar[str] = _TYPE + "ResidencePermitChangeRequired"
    SOURCE: ClassVar[str] = PUBLIC_SECURITY_SOURCE
    type: Literal["cn.mps.entryexit.ResidencePermitChangeRequired"]

    def subject_rule(self) -> tuple[str, str]:
        """The work permit the decision is about."""
        return "data.permit_no", self.data.permit_no


class ResidenceApplicationReferred(CloudEvent[ResidenceApplicationReferredData]):
    EVENT_TYPE: ClassVar[str] = _TYPE + "ResidenceApplicationReferred"
    SOURCE: ClassVar[str] = PUBLIC_SECURITY_SOURCE
    type: Literal["cn.mps.entryexit.ResidenceApplicationReferred"]

    def subject_rule(self) -> tuple[str, str]:
        """The work permit the decision is about."""
        return "data.permit_no", self.data.permit_no


class ResidencePermitCancelled(CloudEvent[ResidencePermitCancelledData]):
    EVENT_TYPE: ClassVar[str] = _TYPE + "ResidencePermitCancelled"
    SOURCE: ClassVar[str] = PUBLIC_SECURITY_SOURCE
    type: Literal["cn.mps.entryexit.ResidencePermitCancelled"]

    def subject_rule(self) -> tuple[str, str]:
        """The work permit the decision is about."""
        return "data.permit_no", self.data.permit_no


class ResidenceApplicationDecided(CloudEvent[ResidenceApplicationDecidedData]):
    """Decision, from public security's desk (an officer)."""

    EVENT_TYPE: ClassVar[str] = _TYPE + "ResidenceApplicationDecided"
    SOURCE: ClassVar[str] = DESK_SOURCE
    type: Literal["cn.mps.entryexit.ResidenceApplicationDecided"]

    def subject_rule(self) -> tuple[str, str]:
        """The work permit the application named."""
        return "data.permit_no", self.data.permit_no


class ResidencePermitCancellationDecided(CloudEvent[ResidencePermitCancellationDecidedData]):
    """Decision, from public security's desk (an officer)."""

    EVENT_TYPE: ClassVar[str] = _TYPE + "ResidencePermitCancellationDecided"
    SOURCE: ClassVar[str] = DESK_SOURCE
    type: Literal["cn.mps.entryexit.ResidencePermitCancellationDecided"]

    def subject_rule(self) -> tuple[str, str]:
        """The work permit whose cancellation opened the case."""
        return "data.permit_no", self.data.permit_no


PUBLIC_SECURITY_DECISION_TYPES: tuple[type[CloudEvent[Any]], ...] = (
    ResidenceApplicationDecided,
    ResidencePermitCancellationDecided,
)
"""On `publicsecurity.decisions.v1`, from public security's desk."""

PUBLIC_SECURITY_REQUEST_TYPES: tuple[type[CloudEvent[Any]], ...] = (
    ResidencePermitApplied,
)
"""On `publicsecurity.requests.v1`."""

RESIDENCE_EVENT_TYPES: tuple[type[CloudEvent[Any]], ...] = (
    ResidencePermitIssued,
    ResidencePermitExtended,
    ResidencePermitRejected,
    ResidencePermitCancellationRequired,
    ResidencePermitExtensionAvailable,
    ResidencePermitChangeRequired,
    ResidenceApplicationReferred,
    ResidencePermitCancelled,
)
"""On `publicsecurity.residence-events.v1`."""
