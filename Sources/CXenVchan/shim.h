// The only place libxenvchan's headers are included. xenvchan.pc lists xenevtchn and xenstore only under
// Requires.private, so the module map links them explicitly (see docs/architecture.md).
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <libxenvchan.h>
#include <xenevtchn.h>
#include <xenstore.h>
#include <xentoollog.h>

/// The byte offsets of `struct vchan_interface` (xen/io/libxenvchan.h) as the C compiler lays it out, so that
/// Sluice's local backend can be checked field by field against the real header.
typedef struct sluice_vchan_c_layout {
    size_t left_cons, left_prod, right_cons, right_prod;
    size_t left_order, right_order, cli_live, srv_live, cli_notify, srv_notify, grants;
    size_t size;
    unsigned notify_write, notify_read;
} sluice_vchan_c_layout;

static inline sluice_vchan_c_layout sluice_vchan_layout(void) {
    sluice_vchan_c_layout l;
    l.left_cons = offsetof(struct vchan_interface, left.cons);
    l.left_prod = offsetof(struct vchan_interface, left.prod);
    l.right_cons = offsetof(struct vchan_interface, right.cons);
    l.right_prod = offsetof(struct vchan_interface, right.prod);
    l.left_order = offsetof(struct vchan_interface, left_order);
    l.right_order = offsetof(struct vchan_interface, right_order);
    l.cli_live = offsetof(struct vchan_interface, cli_live);
    l.srv_live = offsetof(struct vchan_interface, srv_live);
    l.cli_notify = offsetof(struct vchan_interface, cli_notify);
    l.srv_notify = offsetof(struct vchan_interface, srv_notify);
    l.grants = offsetof(struct vchan_interface, grants);
    l.size = sizeof(struct vchan_interface);
    l.notify_write = VCHAN_NOTIFY_WRITE;
    l.notify_read = VCHAN_NOTIFY_READ;
    return l;
}

/// libxenvchan has no setter for its blocking bit-field.
static inline void sluice_xenvchan_set_blocking(struct libxenvchan *ctrl, int blocking) { ctrl->blocking = blocking ? 1 : 0; }

/// This domain's id from xenstore ("domid"), or -1 (errno set) outside Xen.
static inline int sluice_xen_own_domid(void) {
    struct xs_handle *xs = xs_open(0);
    if (!xs) return -1;
    unsigned int len = 0;
    char *value = (char *)xs_read(xs, XBT_NULL, "domid", &len);
    int id = -1;
    if (value) {
        id = 0;
        for (unsigned int i = 0; i < len && value[i] >= '0' && value[i] <= '9'; i++) id = id * 10 + (value[i] - '0');
        free(value);
    }
    xs_close(xs);
    return id;
}

/// The domains xenstore lists under /local/domain that have a name: their ids into `ids` and their names into
/// `names` (NUL-terminated, `stride` bytes each, truncated to fit). Returns how many (at most `max`), or -1 (errno
/// set) outside Xen.
static inline int sluice_xen_list_domains(int *ids, char *names, int stride, int max) {
    struct xs_handle *xs = xs_open(0);
    if (!xs) return -1;
    unsigned int count = 0;
    char **entries = xs_directory(xs, XBT_NULL, "/local/domain", &count);
    int found = 0;
    if (entries) {
        for (unsigned int i = 0; i < count && found < max; i++) {
            char path[64];
            int id = 0;
            const char *p = entries[i];
            if (*p == 0) continue;
            for (; *p >= '0' && *p <= '9' && id < 1000000; p++) id = id * 10 + (*p - '0');
            if (*p != 0) continue;
            snprintf(path, sizeof path, "/local/domain/%d/name", id);
            unsigned int len = 0;
            char *name = (char *)xs_read(xs, XBT_NULL, path, &len);
            if (!name) continue;
            unsigned int copy = len < (unsigned int)(stride - 1) ? len : (unsigned int)(stride - 1);
            memcpy(names + (size_t)found * stride, name, copy);
            names[(size_t)found * stride + copy] = 0;
            free(name);
            ids[found++] = id;
        }
        free(entries);
    } else {
        found = -1;
    }
    xs_close(xs);
    return found;
}

/// A xenstore connection watching for domains that appear (`@introduceDomain`) and go away (`@releaseDomain`); NULL
/// (errno set) outside Xen. Each watch also fires once when it is set.
static inline struct xs_handle *sluice_xen_watch_domains(void) {
    struct xs_handle *xs = xs_open(0);
    if (!xs) return NULL;
    if (!xs_watch(xs, "@introduceDomain", "introduce") || !xs_watch(xs, "@releaseDomain", "release")) {
        xs_close(xs);
        return NULL;
    }
    return xs;
}

/// The descriptor that becomes readable when a watch fires.
static inline int sluice_xen_watch_fd(struct xs_handle *xs) { return xs_fileno(xs); }

/// Consumes every watch event that has arrived, without waiting; returns how many.
static inline int sluice_xen_watch_drain(struct xs_handle *xs) {
    int count = 0;
    char **event;
    while ((event = xs_check_watch(xs)) != NULL) {
        free(event);
        count++;
    }
    return count;
}

static inline void sluice_xen_watch_close(struct xs_handle *xs) { xs_close(xs); }
