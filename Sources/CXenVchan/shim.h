// The only place libxenvchan's headers are included. xenvchan.pc lists xenevtchn only under Requires.private,
// so the module map links it explicitly (see docs/architecture.md).
#include <stddef.h>
#include <stdint.h>
#include <libxenvchan.h>
#include <xenevtchn.h>
#include <xentoollog.h>
