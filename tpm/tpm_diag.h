/*
 * Diagnostics of the TPM backend that do not need tss2 headers: for the
 * integration tests (DESIGN.md §7: after every TPM test no transient object
 * or session may be left loaded) and for status reporting.
 */
#ifndef KSP_TPM_DIAG_H
#define KSP_TPM_DIAG_H

#include "ksp11/pkcs11.h"

/*
 * Count the transient objects and the sessions (loaded and saved) the TPM
 * behind `tcti` reports, over a connection of its own. Behind a resource
 * manager (/dev/tpmrm0, tabrmd) that is this connection's view only; on a
 * bare TPM or swtpm it is the whole TPM. CKR_DEVICE_ERROR if unreachable.
 */
CK_RV ksp_tpm_diag_loaded(const char *tcti, CK_ULONG *objects, CK_ULONG *sessions);

#endif
