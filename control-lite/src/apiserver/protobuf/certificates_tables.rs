//! Field-number tables of `certificates.k8s.io/v1` CertificateSigningRequest
//! (`kubectl certificate approve|deny` sends it as protobuf). `spec.extra`
//! is dropped: the server sets the requester fields itself.

use super::tables::OBJECT_META;
use super::{Msg, Ty};

const SPEC: Msg = Msg {
    name: "CertificateSigningRequestSpec",
    fields: &[
        (1, "request", Ty::Bytes, false),
        (2, "username", Ty::Str, false),
        (3, "uid", Ty::Str, false),
        (4, "groups", Ty::Str, true),
        (5, "usages", Ty::Str, true),
        (6, "extra", Ty::Skip, false),
        (7, "signerName", Ty::Str, false),
        (8, "expirationSeconds", Ty::Int, false),
    ],
};
const CONDITION: Msg = Msg {
    name: "CertificateSigningRequestCondition",
    fields: &[
        (1, "type", Ty::Str, false),
        (2, "reason", Ty::Str, false),
        (3, "message", Ty::Str, false),
        (4, "lastUpdateTime", Ty::Time, false),
        (5, "lastTransitionTime", Ty::Time, false),
        (6, "status", Ty::Str, false),
    ],
};
const STATUS: Msg = Msg {
    name: "CertificateSigningRequestStatus",
    fields: &[(1, "conditions", Ty::Msg(&CONDITION), true), (2, "certificate", Ty::Bytes, false)],
};
pub(super) const CERTIFICATE_SIGNING_REQUEST: Msg = Msg {
    name: "CertificateSigningRequest",
    fields: &[
        (1, "metadata", Ty::Msg(&OBJECT_META), false),
        (2, "spec", Ty::Msg(&SPEC), false),
        (3, "status", Ty::Msg(&STATUS), false),
    ],
};
