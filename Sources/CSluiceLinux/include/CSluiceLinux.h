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

/// pipe2(O_CLOEXEC [| O_NONBLOCK]).
int sluice_pipe(int fds[2], int nonblocking);
/// socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC): each message is one datagram, like a vchan datagram.
int sluice_socketpair_seqpacket(int fds[2]);
/// socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC).
int sluice_socketpair_stream(int fds[2]);

/// sendmsg(2) of `len` bytes with up to 16 descriptors attached as SCM_RIGHTS. MSG_NOSIGNAL is set.
ssize_t sluice_send_with_fds(int sock, const void *buf, size_t len, const int *fds, int nfds);
/// recvmsg(2) of at most `len` bytes and at most `max_fds` descriptors (MSG_CMSG_CLOEXEC). Descriptors beyond
/// `max_fds`, or attached to a truncated message, are closed and the call fails with EMSGSIZE.
ssize_t sluice_recv_with_fds(int sock, void *buf, size_t len, int *fds, int max_fds, int *nfds);

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

/// waitpid(pid, &status, 0) retrying on EINTR. Stores the raw status. Returns the pid or -1.
pid_t sluice_wait(pid_t pid, int *status, int nohang);
/// WIFEXITED / WEXITSTATUS / WIFSIGNALED / WTERMSIG of a raw wait status.
int sluice_status_exited(int status);
int sluice_status_exit_code(int status);
int sluice_status_signaled(int status);
int sluice_status_signal(int status);

#endif
