#define _GNU_SOURCE
#include "CSluiceLinux.h"

#include <dirent.h>
#include <grp.h>
#include <pwd.h>
#include <sys/syscall.h>
#include <errno.h>
#include <stdio.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

enum { SLUICE_MAX_FDS_PER_MESSAGE = 16 };

int sluice_eventfd(unsigned int initial, int nonblocking) {
    return eventfd(initial, EFD_CLOEXEC | (nonblocking ? EFD_NONBLOCK : 0));
}

int sluice_eventfd_signal(int fd, uint64_t value) {
    for (;;) {
        ssize_t n = write(fd, &value, sizeof value);
        if (n == (ssize_t)sizeof value) return 0;
        if (n < 0 && errno == EINTR) continue;
        if (n >= 0) errno = EIO;
        return -1;
    }
}

int sluice_eventfd_drain(int fd, uint64_t *value) {
    for (;;) {
        ssize_t n = read(fd, value, sizeof *value);
        if (n == (ssize_t)sizeof *value) return 0;
        if (n < 0 && errno == EINTR) continue;
        if (n >= 0) errno = EIO;
        return -1;
    }
}

int sluice_epoll_create(void) { return epoll_create1(EPOLL_CLOEXEC); }

int sluice_epoll_ctl(int epfd, int op, int fd, uint32_t events, uint64_t data) {
    struct epoll_event ev;
    memset(&ev, 0, sizeof ev);
    ev.events = events;
    ev.data.u64 = data;
    return epoll_ctl(epfd, op, fd, &ev);
}

int sluice_epoll_wait(int epfd, sluice_epoll_event *events, int max_events, int timeout_ms) {
    struct epoll_event raw[64];
    if (max_events > 64) max_events = 64;
    if (max_events <= 0) {
        errno = EINVAL;
        return -1;
    }
    int n;
    do {
        n = epoll_wait(epfd, raw, max_events, timeout_ms);
    } while (n < 0 && errno == EINTR && timeout_ms < 0);
    for (int i = 0; i < n; i++) {
        events[i].events = raw[i].events;
        events[i].data = raw[i].data.u64;
    }
    return n;
}

int sluice_memfd_create(const char *name) { return memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING); }

int sluice_memfd_seal_size(int fd) { return fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL); }

int sluice_memfd_is_size_sealed(int fd) {
    int seals = fcntl(fd, F_GET_SEALS);
    if (seals < 0) return -1;
    return (seals & (F_SEAL_SHRINK | F_SEAL_GROW)) == (F_SEAL_SHRINK | F_SEAL_GROW);
}

int sluice_descriptor_probe(int fd, struct sluice_descriptor_info *info) {
    struct stat st;
    if (fstat(fd, &st) != 0) return -1;
    info->mode = st.st_mode;
    info->size = (long long)st.st_size;
    info->seals = fcntl(fd, F_GET_SEALS);
    info->socket_type = -1;
    info->socket_family = -1;
    if (S_ISSOCK(st.st_mode)) {
        socklen_t length = sizeof(int);
        int value = 0;
        if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &value, &length) == 0) info->socket_type = value;
        length = sizeof(int);
        if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &value, &length) == 0) info->socket_family = value;
    }
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(path, info->link, sizeof info->link - 1);
    info->link[n > 0 ? n : 0] = 0;
    info->flags = fcntl(fd, F_GETFL);
    return 0;
}

int sluice_seals_size_sealed(void) { return F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL; }

int sluice_poll_two(int fd1, int fd2, int timeout_ms) {
    struct pollfd fds[2] = {{.fd = fd1, .events = POLLIN}, {.fd = fd2, .events = POLLIN | POLLRDHUP}};
    int count = fd2 >= 0 ? 2 : 1;
    int n;
    do {
        n = poll(fds, (nfds_t)count, timeout_ms);
    } while (n < 0 && errno == EINTR && timeout_ms < 0);
    if (n <= 0) return n;
    int mask = 0;
    if (fds[0].revents) mask |= 1;
    if (count == 2 && fds[1].revents) mask |= 2;
    return mask;
}

int sluice_socket_peer_gone(int fd) {
    struct pollfd p = {.fd = fd, .events = POLLRDHUP};
    int n = poll(&p, 1, 0);
    if (n < 0) return -1;
    return (p.revents & (POLLHUP | POLLRDHUP | POLLERR)) != 0;
}

static int make_address(struct sockaddr_un *addr, const char *path) {
    memset(addr, 0, sizeof *addr);
    addr->sun_family = AF_UNIX;
    if (strlen(path) >= sizeof addr->sun_path) {
        errno = ENAMETOOLONG;
        return -1;
    }
    strcpy(addr->sun_path, path);
    return 0;
}

static int listen_unix(const char *path, unsigned int mode, int type) {
    struct sockaddr_un addr;
    if (make_address(&addr, path) != 0) return -1;
    int fd = socket(AF_UNIX, type | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    unlink(path);
    mode_t old = umask(0777 & ~mode);
    int rc = bind(fd, (struct sockaddr *)&addr, sizeof addr);
    umask(old);
    if (rc != 0 || chmod(path, mode) != 0 || listen(fd, 128) != 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    return fd;
}

static int connect_unix(const char *path, int type) {
    struct sockaddr_un addr;
    if (make_address(&addr, path) != 0) return -1;
    int fd = socket(AF_UNIX, type | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    int rc;
    do {
        rc = connect(fd, (struct sockaddr *)&addr, sizeof addr);
    } while (rc != 0 && errno == EINTR);
    if (rc != 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    return fd;
}

int sluice_listen_seqpacket(const char *path, unsigned int mode) { return listen_unix(path, mode, SOCK_SEQPACKET); }
int sluice_connect_seqpacket(const char *path) { return connect_unix(path, SOCK_SEQPACKET); }
int sluice_listen_stream(const char *path, unsigned int mode) { return listen_unix(path, mode, SOCK_STREAM); }
int sluice_connect_stream(const char *path) { return connect_unix(path, SOCK_STREAM); }

int sluice_accept(int listener) {
    int fd;
    do {
        fd = accept4(listener, NULL, NULL, SOCK_CLOEXEC);
    } while (fd < 0 && errno == EINTR);
    return fd;
}

int sluice_set_nonblocking(int fd, int nonblocking) {
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0) return -1;
    flags = nonblocking ? (flags | O_NONBLOCK) : (flags & ~O_NONBLOCK);
    return fcntl(fd, F_SETFL, flags);
}

int sluice_count_open_fds(void) {
    DIR *dir = opendir("/proc/self/fd");
    if (!dir) return -1;
    int count = 0;
    struct dirent *entry;
    while ((entry = readdir(dir)) != NULL) {
        if (entry->d_name[0] != '.') count++;
    }
    closedir(dir);
    return count - 1;
}

long sluice_raise_fd_limit(long wanted) {
    struct rlimit limit;
    if (getrlimit(RLIMIT_NOFILE, &limit) != 0) return -1;
    if ((rlim_t)wanted > limit.rlim_cur) {
        limit.rlim_cur = (rlim_t)wanted < limit.rlim_max ? (rlim_t)wanted : limit.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &limit) != 0) return -1;
    }
    return (long)limit.rlim_cur;
}

struct thread_start {
    void (*body)(void *);
    void *context;
};

static void *thread_trampoline(void *raw) {
    struct thread_start start = *(struct thread_start *)raw;
    free(raw);
    start.body(start.context);
    return NULL;
}

int sluice_thread_start(void (*body)(void *), void *context) {
    struct thread_start *start = malloc(sizeof *start);
    if (!start) return ENOMEM;
    start->body = body;
    start->context = context;
    pthread_t thread;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    int rc = pthread_create(&thread, &attr, thread_trampoline, start);
    pthread_attr_destroy(&attr);
    if (rc != 0) free(start);
    return rc;
}

int sluice_pipe(int fds[2], int nonblocking) { return pipe2(fds, O_CLOEXEC | (nonblocking ? O_NONBLOCK : 0)); }

int sluice_socketpair_seqpacket(int fds[2]) { return socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, fds); }

int sluice_socketpair_stream(int fds[2]) { return socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds); }

ssize_t sluice_send_with_fds(int sock, const void *buf, size_t len, const int *fds, int nfds) {
    if (nfds < 0 || nfds > SLUICE_MAX_FDS_PER_MESSAGE) {
        errno = EINVAL;
        return -1;
    }
    struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
    union {
        char buf[CMSG_SPACE(sizeof(int) * SLUICE_MAX_FDS_PER_MESSAGE)];
        struct cmsghdr align;
    } control;
    struct msghdr msg;
    memset(&msg, 0, sizeof msg);
    memset(&control, 0, sizeof control);
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    if (nfds > 0) {
        msg.msg_control = control.buf;
        msg.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)nfds);
        struct cmsghdr *cmsg = CMSG_FIRSTHDR(&msg);
        cmsg->cmsg_level = SOL_SOCKET;
        cmsg->cmsg_type = SCM_RIGHTS;
        cmsg->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)nfds);
        memcpy(CMSG_DATA(cmsg), fds, sizeof(int) * (size_t)nfds);
    }
    ssize_t n;
    do {
        n = sendmsg(sock, &msg, MSG_NOSIGNAL);
    } while (n < 0 && errno == EINTR);
    return n;
}

ssize_t sluice_recv_with_fds(int sock, void *buf, size_t len, int *fds, int max_fds, int *nfds) {
    struct iovec iov = {.iov_base = buf, .iov_len = len};
    union {
        char buf[CMSG_SPACE(sizeof(int) * SLUICE_MAX_FDS_PER_MESSAGE)];
        struct cmsghdr align;
    } control;
    struct msghdr msg;
    memset(&msg, 0, sizeof msg);
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.buf;
    msg.msg_controllen = sizeof control.buf;
    *nfds = 0;
    ssize_t n;
    do {
        n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
    } while (n < 0 && errno == EINTR);
    if (n < 0) return n;
    int received = 0;
    int overflow = (msg.msg_flags & (MSG_CTRUNC | MSG_TRUNC)) != 0;
    // The kernel also cuts descriptors off (MSG_CTRUNC) when this process has no room for them: find out before
    // any is closed, and say so.
    int full = 0;
    if (msg.msg_flags & MSG_CTRUNC) {
        int spare = fcntl(sock, F_DUPFD_CLOEXEC, 0);
        if (spare < 0 && errno == EMFILE) full = 1;
        if (spare >= 0) close(spare);
    }
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c != NULL; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
        size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        int *incoming = (int *)CMSG_DATA(c);
        for (size_t i = 0; i < count; i++) {
            int fd;
            memcpy(&fd, incoming + i, sizeof fd);
            if (!overflow && received < max_fds) {
                fds[received++] = fd;
            } else {
                overflow = 1;
                close(fd);
            }
        }
    }
    if (overflow) {
        for (int i = 0; i < received; i++) close(fds[i]);
        errno = full ? EMFILE : EMSGSIZE;
        return -1;
    }
    *nfds = received;
    return n;
}

int sluice_peer_credentials(int sock, pid_t *pid, uid_t *uid, gid_t *gid) {
    struct ucred cred;
    socklen_t size = sizeof cred;
    if (getsockopt(sock, SOL_SOCKET, SO_PEERCRED, &cred, &size) != 0) return -1;
    *pid = cred.pid;
    *uid = cred.uid;
    *gid = cred.gid;
    return 0;
}

// The source descriptor of each mapping, made safe to dup2 in order: a source that another mapping overwrites
// (its child number) is first duplicated in the parent above every child number, into temps[i]. Every other source
// is used as it is, so a process near its descriptor limit needs no spare numbers (the old way, a scratch copy of
// every source above the highest descriptor involved, failed with EBADF there). Returns 0 or an errno.
static int sluice_prepare_sources(const sluice_fd_mapping *mappings, int mapping_count, int temps[]) {
    int highest_child = 2;
    for (int i = 0; i < mapping_count; i++) {
        temps[i] = -1;
        if (mappings[i].child_fd > highest_child) highest_child = mappings[i].child_fd;
    }
    for (int i = 0; i < mapping_count; i++) {
        for (int k = 0; k < mapping_count; k++) {
            if (k == i || mappings[k].child_fd != mappings[i].parent_fd) continue;
            if (mappings[k].parent_fd == mappings[i].parent_fd) continue;
            temps[i] = fcntl(mappings[i].parent_fd, F_DUPFD_CLOEXEC, highest_child + 1);
            if (temps[i] < 0) {
                int saved = errno;
                for (int j = 0; j < i; j++)
                    if (temps[j] >= 0) close(temps[j]);
                return saved;
            }
            break;
        }
    }
    return 0;
}

static void sluice_close_temps(int temps[], int mapping_count) {
    for (int i = 0; i < mapping_count; i++)
        if (temps[i] >= 0) close(temps[i]);
}

int sluice_spawn(pid_t *pid, const char *path, char *const argv[], char *const envp[],
                 const sluice_fd_mapping *mappings, int mapping_count, int first_closed_fd,
                 int new_process_group, const char *working_directory) {
    posix_spawn_file_actions_t actions;
    posix_spawnattr_t attr;
    int rc = posix_spawn_file_actions_init(&actions);
    if (rc != 0) return rc;
    rc = posix_spawnattr_init(&attr);
    if (rc != 0) {
        posix_spawn_file_actions_destroy(&actions);
        return rc;
    }
    // Each source goes to its target in order (sources another mapping overwrites were copied out of the way
    // first). A dup2 onto the same number clears FD_CLOEXEC too (POSIX 2018, glibc 2.29). closefrom then removes
    // everything else, the parent's temporary copies included.
    int temps[mapping_count > 0 ? mapping_count : 1];
    rc = sluice_prepare_sources(mappings, mapping_count, temps);
    if (rc != 0) {
        posix_spawnattr_destroy(&attr);
        posix_spawn_file_actions_destroy(&actions);
        return rc;
    }
    for (int i = 0; rc == 0 && i < mapping_count; i++)
        rc = posix_spawn_file_actions_adddup2(
            &actions, temps[i] >= 0 ? temps[i] : mappings[i].parent_fd, mappings[i].child_fd);
    if (rc == 0 && working_directory != NULL)
        rc = posix_spawn_file_actions_addchdir_np(&actions, working_directory);
    if (rc == 0) rc = posix_spawn_file_actions_addclosefrom_np(&actions, first_closed_fd);

    sigset_t all, none;
    sigfillset(&all);
    sigemptyset(&none);
    short flags = POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK;
    if (new_process_group) flags |= POSIX_SPAWN_SETPGROUP;
    if (rc == 0) rc = posix_spawnattr_setflags(&attr, flags);
    if (rc == 0) rc = posix_spawnattr_setsigdefault(&attr, &all);
    if (rc == 0) rc = posix_spawnattr_setsigmask(&attr, &none);
    if (rc == 0 && new_process_group) rc = posix_spawnattr_setpgroup(&attr, 0);
    if (rc == 0) rc = posix_spawn(pid, path, &actions, &attr, argv, envp);
    sluice_close_temps(temps, mapping_count);
    posix_spawnattr_destroy(&attr);
    posix_spawn_file_actions_destroy(&actions);
    return rc;
}

int sluice_spawn_user(pid_t *pid, const char *path, char *const argv[], char *const envp[],
                      const sluice_fd_mapping *mappings, int mapping_count, int first_closed_fd,
                      int new_process_group, const char *working_directory, uid_t uid, gid_t gid,
                      const gid_t *groups, int group_count) {
    int temps[mapping_count > 0 ? mapping_count : 1];
    int prepared = sluice_prepare_sources(mappings, mapping_count, temps);
    if (prepared != 0) return prepared;
    int report[2];
    if (pipe2(report, O_CLOEXEC) != 0) {
        int saved = errno;
        sluice_close_temps(temps, mapping_count);
        return saved;
    }
    pid_t child = fork();
    if (child < 0) {
        int saved = errno;
        close(report[0]);
        close(report[1]);
        sluice_close_temps(temps, mapping_count);
        return saved;
    }
    if (child == 0) {
        int failure = 0;
        sigset_t none;
        sigemptyset(&none);
        for (int sig = 1; sig < NSIG; sig++) signal(sig, SIG_DFL);
        sigprocmask(SIG_SETMASK, &none, NULL);
        if (new_process_group && setpgid(0, 0) != 0) failure = errno;
        if (!failure && setgroups((size_t)group_count, groups) != 0) failure = errno;
        if (!failure && setgid(gid) != 0) failure = errno;
        if (!failure && setuid(uid) != 0) failure = errno;
        if (!failure && working_directory && chdir(working_directory) != 0) {
            if (chdir("/") != 0) failure = errno;
        }
        for (int i = 0; !failure && i < mapping_count; i++) {
            int source = temps[i] >= 0 ? temps[i] : mappings[i].parent_fd;
            if (source == mappings[i].child_fd) {
                if (fcntl(source, F_SETFD, 0) < 0) failure = errno;
            } else if (dup2(source, mappings[i].child_fd) < 0) {
                failure = errno;
            }
        }
        if (!failure) {
            // Close everything from first_closed_fd up except the report pipe, which is close-on-exec.
            int keep = report[1];
            if (keep > first_closed_fd) syscall(SYS_close_range, (unsigned)first_closed_fd, (unsigned)(keep - 1), 0);
            syscall(SYS_close_range, (unsigned)(keep < first_closed_fd ? first_closed_fd : keep + 1), ~0U, 0);
            execve(path, argv, envp);
            failure = errno;
        }
        ssize_t ignored = write(report[1], &failure, sizeof failure);
        (void)ignored;
        _exit(127);
    }
    close(report[1]);
    sluice_close_temps(temps, mapping_count);
    int failure = 0;
    ssize_t n;
    do {
        n = read(report[0], &failure, sizeof failure);
    } while (n < 0 && errno == EINTR);
    close(report[0]);
    if (n == (ssize_t)sizeof failure && failure != 0) {
        int status;
        while (waitpid(child, &status, 0) < 0 && errno == EINTR) {}
        return failure;
    }
    *pid = child;
    return 0;
}

int sluice_user_lookup(const char *name, uid_t *uid, gid_t *gid, char *home, char *shell, size_t text_size,
                       gid_t *groups, int *group_count) {
    struct passwd entry, *result = NULL;
    char buffer[4096];
    int rc = getpwnam_r(name, &entry, buffer, sizeof buffer, &result);
    if (rc != 0) return rc;
    if (!result) return ENOENT;
    *uid = entry.pw_uid;
    *gid = entry.pw_gid;
    snprintf(home, text_size, "%s", entry.pw_dir ? entry.pw_dir : "/");
    snprintf(shell, text_size, "%s", entry.pw_shell ? entry.pw_shell : "/bin/sh");
    int count = *group_count;
    if (getgrouplist(name, entry.pw_gid, groups, &count) < 0) {
        *group_count = 0;
        return ERANGE;
    }
    *group_count = count;
    return 0;
}

int sluice_pidfd_open(pid_t pid) { return (int)syscall(SYS_pidfd_open, pid, 0); }

int sluice_shutdown_write(int fd) { return shutdown(fd, SHUT_WR); }

int sluice_set_pipe_size(int fd, int size) { return fcntl(fd, F_SETPIPE_SZ, size); }

int sluice_interrupt_signalfd(void) {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    if (pthread_sigmask(SIG_BLOCK, &set, NULL) != 0) return -1;
    return signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
}

int sluice_signalfd_take(int fd) {
    struct signalfd_siginfo info;
    ssize_t n = read(fd, &info, sizeof info);
    return n == (ssize_t)sizeof info ? (int)info.ssi_signo : 0;
}

pid_t sluice_wait(pid_t pid, int *status, int nohang) {
    pid_t r;
    do {
        r = waitpid(pid, status, nohang ? WNOHANG : 0);
    } while (r < 0 && errno == EINTR);
    return r;
}

int sluice_status_exited(int status) { return WIFEXITED(status); }
int sluice_status_exit_code(int status) { return WEXITSTATUS(status); }
int sluice_status_signaled(int status) { return WIFSIGNALED(status); }
int sluice_status_signal(int status) { return WTERMSIG(status); }
