// CSluiceLinux: the Linux calls that Swift's Glibc module does not import (eventfd, epoll, memfd_create,
// SCM_RIGHTS / CMSG_*, SO_PEERCRED, pipe2, posix_spawn with closefrom). Every function returns -1 and leaves
// errno set on failure, like the call it wraps. Swift code never includes these headers itself: SluiceSystem
// wraps each function in a typed API.
//
// _GNU_SOURCE is defined in the .c file only: defining it here breaks the Glibc module (see stack-facts.md).
#ifndef CSLUICE_LINUX_H
#define CSLUICE_LINUX_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/// eventfd(2) with EFD_CLOEXEC, plus EFD_NONBLOCK when `nonblocking` is non-zero.
int sluice_eventfd(unsigned int initial, int nonblocking);
/// Adds `value` to an eventfd counter (write(2) of one uint64).
int sluice_eventfd_signal(int fd, uint64_t value);
/// Reads and resets an eventfd counter. Returns 0 and stores the value, or -1 (EAGAIN when nothing is pending).
int sluice_eventfd_drain(int fd, uint64_t *value);

/// One readiness event, unpacked (struct epoll_event is packed on x86_64 and does not import cleanly).
typedef struct sluice_epoll_event {
    uint32_t events;
    uint64_t data;
} sluice_epoll_event;

enum {
    SLUICE_EPOLLIN = 0x001,
    SLUICE_EPOLLOUT = 0x004,
    SLUICE_EPOLLERR = 0x008,
    SLUICE_EPOLLHUP = 0x010,
    SLUICE_EPOLLRDHUP = 0x2000,
};

/// epoll_create1(EPOLL_CLOEXEC).
int sluice_epoll_create(void);
/// epoll_ctl(EPOLL_CTL_ADD / MOD / DEL). `op` is 1 (add), 2 (delete) or 3 (modify), as in <sys/epoll.h>.
int sluice_epoll_ctl(int epfd, int op, int fd, uint32_t events, uint64_t data);
/// epoll_wait(2), retrying on EINTR only when `timeout_ms` is negative.
int sluice_epoll_wait(int epfd, sluice_epoll_event *events, int max_events, int timeout_ms);

/// memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING).
int sluice_memfd_create(const char *name);
/// Seals a memfd against shrinking, growing and further sealing (F_ADD_SEALS), so that a peer that maps it can
/// never be made to fault (SIGBUS) by a truncation.
int sluice_memfd_seal_size(int fd);
/// Whether a memfd carries F_SEAL_SHRINK and F_SEAL_GROW: 1 yes, 0 no, -1 error.
int sluice_memfd_is_size_sealed(int fd);

/// poll(2) on up to two descriptors for input. Returns a bit mask: 1 = first readable or hung up, 2 = second
/// readable or hung up, 0 = timeout, -1 = error. `fd2` may be -1. Retries on EINTR when `timeout_ms` < 0.
int sluice_poll_two(int fd1, int fd2, int timeout_ms);
/// Whether the peer of a connected socket has gone (POLLHUP or POLLRDHUP, checked without waiting).
int sluice_socket_peer_gone(int fd);

/// A SOCK_SEQPACKET UNIX socket bound to `path` and listening, close-on-exec, created with mode `mode`.
int sluice_listen_seqpacket(const char *path, unsigned int mode);
/// accept4(SOCK_CLOEXEC).
int sluice_accept(int listener);
/// A SOCK_SEQPACKET connection to `path`, close-on-exec.
int sluice_connect_seqpacket(const char *path);
/// A SOCK_STREAM UNIX socket bound to `path` and listening, close-on-exec.
int sluice_listen_stream(const char *path, unsigned int mode);
/// A SOCK_STREAM connection to `path`, close-on-exec.
int sluice_connect_stream(const char *path);
/// Sets or clears O_NONBLOCK.
int sluice_set_nonblocking(int fd, int nonblocking);
/// The number of open descriptors of this process (entries of /proc/self/fd, less the one used to count).
int sluice_count_open_fds(void);
/// Raises RLIMIT_NOFILE's soft limit to at least `wanted` (at most the hard limit). Returns the new soft limit.
long sluice_raise_fd_limit(long wanted);

/// Starts a detached POSIX thread running `body(context)`. Returns 0 or an errno value.
int sluice_thread_start(void (*body)(void *), void *context);

// Atomics on shared memory, with the C11 memory model the peer (C libxenvchan or another Sluice) also uses.
static inline uint32_t sluice_load_acquire_u32(const volatile void *p) {
    return __atomic_load_n((const volatile uint32_t *)p, __ATOMIC_ACQUIRE);
}
static inline void sluice_store_release_u32(volatile void *p, uint32_t v) {
    __atomic_store_n((volatile uint32_t *)p, v, __ATOMIC_RELEASE);
}
static inline uint8_t sluice_load_acquire_u8(const volatile void *p) {
    return __atomic_load_n((const volatile uint8_t *)p, __ATOMIC_ACQUIRE);
}
static inline void sluice_store_release_u8(volatile void *p, uint8_t v) {
    __atomic_store_n((volatile uint8_t *)p, v, __ATOMIC_RELEASE);
}
static inline uint8_t sluice_fetch_or_u8(volatile void *p, uint8_t v) {
    return __atomic_fetch_or((volatile uint8_t *)p, v, __ATOMIC_SEQ_CST);
}
static inline uint8_t sluice_fetch_and_u8(volatile void *p, uint8_t v) {
    return __atomic_fetch_and((volatile uint8_t *)p, v, __ATOMIC_SEQ_CST);
}
static inline void sluice_full_fence(void) { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
static inline void sluice_cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

/// pipe2(O_CLOEXEC [| O_NONBLOCK]).
int sluice_pipe(int fds[2], int nonblocking);
/// socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC): each message is one datagram, like a vchan datagram.
int sluice_socketpair_seqpacket(int fds[2]);
/// socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC).
int sluice_socketpair_stream(int fds[2]);

/// sendmsg(2) of `len` bytes with up to 16 descriptors attached as SCM_RIGHTS. MSG_NOSIGNAL is set.
ssize_t sluice_send_with_fds(int sock, const void *buf, size_t len, const int *fds, int nfds);
/// recvmsg(2) of at most `len` bytes and at most `max_fds` descriptors (MSG_CMSG_CLOEXEC). Descriptors beyond
/// `max_fds`, or attached to a truncated message, are closed and the call fails with EMSGSIZE (EMFILE when the
/// descriptors were cut off because this process is at its descriptor limit).
ssize_t sluice_recv_with_fds(int sock, void *buf, size_t len, int *fds, int max_fds, int *nfds);

/// What a descriptor is, as the kernel says: fstat's mode and size, its memfd seals (F_GET_SEALS, -1 if it has none),
/// its socket type and family (-1 if not a socket), its /proc/self/fd link (`anon_inode:[eventfd]`, `pipe:[N]`,
/// `/memfd:NAME (deleted)`, ...) and its status flags (F_GETFL). Returns 0, or -1 with errno if fstat fails.
struct sluice_descriptor_info {
    unsigned int mode;
    long long size;
    int seals;
    int socket_type;
    int socket_family;
    int flags;
    char link[128];
};
int sluice_descriptor_probe(int fd, struct sluice_descriptor_info *info);
/// The seals a vchan's memfd must carry: F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL.
int sluice_seals_size_sealed(void);

/// SO_PEERCRED of a connected UNIX socket: the peer's pid, uid and gid as the kernel recorded them.
int sluice_peer_credentials(int sock, pid_t *pid, uid_t *uid, gid_t *gid);

/// One descriptor for the child: `child_fd` in the child becomes a copy of `parent_fd`.
typedef struct sluice_fd_mapping {
    int parent_fd;
    int child_fd;
} sluice_fd_mapping;

/// posix_spawn(3) that maps descriptors with dup2, closes every other descriptor from `first_closed_fd` up
/// (posix_spawn_file_actions_addclosefrom_np), resets signal dispositions and mask, and optionally puts the
/// child in a new process group (`new_process_group` non-zero). Returns 0 or an errno value, like posix_spawn.
int sluice_spawn(pid_t *pid, const char *path, char *const argv[], char *const envp[],
                 const sluice_fd_mapping *mappings, int mapping_count, int first_closed_fd,
                 int new_process_group, const char *working_directory);

/// fork + exec for a child that must run as another user: resets signals, optionally starts a new process group,
/// switches groups (setgroups, setgid) then uid (setuid), changes directory (falling back to /), maps descriptors as
/// sluice_spawn does, closes every other descriptor (close_range) and execs. Only async-signal-safe calls run in
/// the child. Returns 0 or the errno of the step that failed (reported back through a close-on-exec pipe).
int sluice_spawn_user(pid_t *pid, const char *path, char *const argv[], char *const envp[],
                      const sluice_fd_mapping *mappings, int mapping_count, int first_closed_fd,
                      int new_process_group, const char *working_directory, uid_t uid, gid_t gid,
                      const gid_t *groups, int group_count);

/// getpwnam_r + getgrouplist: a user's uid, gid, home, shell and supplementary groups. Returns 0, ENOENT for an
/// unknown user, or an errno. `home` and `shell` receive NUL-terminated strings of at most `text_size` bytes.
int sluice_user_lookup(const char *name, uid_t *uid, gid_t *gid, char *home, char *shell, size_t text_size,
                       gid_t *groups, int *group_count);

/// pidfd_open(2): a descriptor that becomes readable when the process exits (Linux 5.3+). -1 on error.
int sluice_pidfd_open(pid_t pid);
/// shutdown(fd, SHUT_WR).
int sluice_shutdown_write(int fd);
/// Sets the capacity of a pipe (F_SETPIPE_SZ). Returns the new capacity or -1.
int sluice_set_pipe_size(int fd, int size);

/// Blocks SIGINT, SIGTERM and SIGHUP for this thread (call it before starting others) and returns a signalfd
/// (close-on-exec, non-blocking) that becomes readable when one arrives. -1 on error.
int sluice_interrupt_signalfd(void);
/// Reads one pending signal from a signalfd: its number, or 0 if none was pending.
int sluice_signalfd_take(int fd);

/// waitpid(pid, &status, 0) retrying on EINTR. Stores the raw status. Returns the pid or -1.
pid_t sluice_wait(pid_t pid, int *status, int nohang);
/// WIFEXITED / WEXITSTATUS / WIFSIGNALED / WTERMSIG of a raw wait status.
int sluice_status_exited(int status);
int sluice_status_exit_code(int status);
int sluice_status_signaled(int status);
int sluice_status_signal(int status);

#endif
