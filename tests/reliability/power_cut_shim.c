/* Records what a process writes under one directory, so that a test can rebuild the disk as a
 * power cut would leave it (in the manner of SQLite's src/test6.c, at the system-call level).
 *
 * Loaded with LD_PRELOAD into the process under test. Every write, truncation and sync of a file
 * directly inside $POWERCUT_DIR, every file creation there and every fsync of the directory itself
 * is appended to $POWERCUT_JOURNAL. The calls still go to the real file: the process sees its page
 * cache as usual. The journal is what the disk would have been told, in order; the test replays it
 * and keeps, for each file, only what was written before that file's last sync (plus, if it wants,
 * some or torn parts of the later writes), and for the directory only the names present at its
 * last fsync.
 *
 * Entry: a 32-byte header (magic "PCJ1", op, inode, offset, length) then `length` bytes.
 *   'W' write      offset = file offset, data = the bytes (journaled before the real write)
 *   'T' truncate   offset = new size (journaled before the real ftruncate)
 *   'S' sync       fsync/fdatasync of a file returned 0
 *   'C' create     open(O_CREAT) made a new file (a reused inode number starts afresh)
 *   'D' dirsync    fsync of the directory returned 0; data = "inode\tname\n" per entry
 * A SIGKILL between an entry and its real call leaves at most the last 'W'/'T' unperformed.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

#define MAX_FD 65536
enum { UNTRACKED = 0, FILE_IN_DIR = 1, THE_DIR = 2 };

struct header {
    char magic[4];
    uint32_t op;
    uint64_t ino;
    uint64_t offset;
    uint64_t length;
};

static unsigned char kind_of[MAX_FD];
static uint64_t ino_of[MAX_FD];
static char root[PATH_MAX];
static size_t root_len;
static int journal = -1;

static int (*real_open)(const char *, int, ...);
static int (*real_openat)(int, const char *, int, ...);
static int (*real_close)(int);
static ssize_t (*real_write)(int, const void *, size_t);
static ssize_t (*real_pwrite)(int, const void *, size_t, off_t);
static int (*real_fsync)(int);
static int (*real_fdatasync)(int);
static int (*real_ftruncate)(int, off_t);

__attribute__((constructor)) static void setup(void) {
    real_open = dlsym(RTLD_NEXT, "open");
    real_openat = dlsym(RTLD_NEXT, "openat");
    real_close = dlsym(RTLD_NEXT, "close");
    real_write = dlsym(RTLD_NEXT, "write");
    real_pwrite = dlsym(RTLD_NEXT, "pwrite");
    real_fsync = dlsym(RTLD_NEXT, "fsync");
    real_fdatasync = dlsym(RTLD_NEXT, "fdatasync");
    real_ftruncate = dlsym(RTLD_NEXT, "ftruncate");
    const char *dir = getenv("POWERCUT_DIR");
    const char *path = getenv("POWERCUT_JOURNAL");
    if (dir == NULL || path == NULL || realpath(dir, root) == NULL) {
        return;
    }
    root_len = strlen(root);
    journal = real_open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (journal < 0) {
        fprintf(stderr, "power_cut_shim: cannot open journal %s: %s\n", path, strerror(errno));
        abort(); /* a test that silently journals nothing would prove nothing */
    }
}

/* One entry in one write(2): a SIGKILL lands before or after it, never inside. */
static void record(uint32_t op, uint64_t ino, uint64_t offset, const void *data, uint64_t length) {
    struct header head = {{'P', 'C', 'J', '1'}, op, ino, offset, length};
    struct iovec parts[2] = {{&head, sizeof head}, {(void *)data, length}};
    size_t total = sizeof head + length;
    ssize_t done = writev(journal, parts, length ? 2 : 1);
    if (done != (ssize_t)total) {
        fprintf(stderr, "power_cut_shim: journal write failed\n");
        abort();
    }
}

static int tracked(int fd) { return journal >= 0 && fd >= 0 && fd < MAX_FD ? kind_of[fd] : UNTRACKED; }

static void adopt(int fd, int created) {
    char link[64], target[PATH_MAX];
    struct stat st;
    if (journal < 0 || fd < 0 || fd >= MAX_FD) {
        return;
    }
    kind_of[fd] = UNTRACKED;
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, target, sizeof target - 1);
    if (n <= 0 || fstat(fd, &st) != 0) {
        return;
    }
    target[n] = '\0';
    if ((size_t)n == root_len && memcmp(target, root, root_len) == 0) {
        kind_of[fd] = THE_DIR;
    } else if ((size_t)n > root_len + 1 && memcmp(target, root, root_len) == 0 && target[root_len] == '/' &&
               strchr(target + root_len + 1, '/') == NULL && S_ISREG(st.st_mode)) {
        kind_of[fd] = FILE_IN_DIR;
        ino_of[fd] = st.st_ino;
        if (created) {
            record('C', st.st_ino, 0, NULL, 0);
        }
    }
}

static int opened(int dirfd, const char *path, int flags, mode_t mode) {
    struct stat st;
    int existed = (flags & O_CREAT) ? fstatat(dirfd, path, &st, 0) == 0 : 1;
    int fd = real_openat(dirfd, path, flags, mode);
    if (fd >= 0) {
        adopt(fd, !existed);
        if (tracked(fd) == FILE_IN_DIR && existed && (flags & O_TRUNC)) {
            record('T', ino_of[fd], 0, NULL, 0);
        }
    }
    return fd;
}

static mode_t mode_arg(int flags, va_list args) {
    return (flags & (O_CREAT | O_TMPFILE)) ? (mode_t)va_arg(args, int) : 0;
}

int open(const char *path, int flags, ...) {
    va_list args;
    va_start(args, flags);
    mode_t mode = mode_arg(flags, args);
    va_end(args);
    return opened(AT_FDCWD, path, flags, mode);
}

int open64(const char *path, int flags, ...) {
    va_list args;
    va_start(args, flags);
    mode_t mode = mode_arg(flags, args);
    va_end(args);
    return opened(AT_FDCWD, path, flags, mode);
}

int openat(int dirfd, const char *path, int flags, ...) {
    va_list args;
    va_start(args, flags);
    mode_t mode = mode_arg(flags, args);
    va_end(args);
    return opened(dirfd, path, flags, mode);
}

int openat64(int dirfd, const char *path, int flags, ...) {
    va_list args;
    va_start(args, flags);
    mode_t mode = mode_arg(flags, args);
    va_end(args);
    return opened(dirfd, path, flags, mode);
}

int close(int fd) {
    if (fd >= 0 && fd < MAX_FD) {
        kind_of[fd] = UNTRACKED;
    }
    return real_close(fd);
}

ssize_t pwrite(int fd, const void *data, size_t length, off_t offset) {
    if (tracked(fd) == FILE_IN_DIR) {
        record('W', ino_of[fd], (uint64_t)offset, data, length);
    }
    return real_pwrite(fd, data, length, offset);
}

ssize_t pwrite64(int fd, const void *data, size_t length, off_t offset) { return pwrite(fd, data, length, offset); }

ssize_t write(int fd, const void *data, size_t length) {
    if (tracked(fd) == FILE_IN_DIR) {
        struct stat st;
        off_t offset = lseek(fd, 0, SEEK_CUR);
        if ((fcntl(fd, F_GETFL) & O_APPEND) && fstat(fd, &st) == 0) {
            offset = st.st_size;
        }
        record('W', ino_of[fd], (uint64_t)offset, data, length);
    }
    return real_write(fd, data, length);
}

int ftruncate(int fd, off_t length) {
    if (tracked(fd) == FILE_IN_DIR) {
        record('T', ino_of[fd], (uint64_t)length, NULL, 0);
    }
    return real_ftruncate(fd, length);
}

int ftruncate64(int fd, off_t length) { return ftruncate(fd, length); }

static void list_directory(void) {
    size_t size = 0, used = 0;
    char *text = NULL;
    DIR *dir = opendir(root);
    struct dirent *entry;
    if (dir == NULL) {
        abort();
    }
    while ((entry = readdir(dir)) != NULL) {
        if (strcmp(entry->d_name, ".") == 0 || strcmp(entry->d_name, "..") == 0) {
            continue;
        }
        size_t need = used + strlen(entry->d_name) + 32;
        if (need > size) {
            size = need * 2;
            text = realloc(text, size);
            if (text == NULL) {
                abort();
            }
        }
        used += (size_t)sprintf(text + used, "%llu\t%s\n", (unsigned long long)entry->d_ino, entry->d_name);
    }
    closedir(dir);
    record('D', 0, 0, text, used);
    free(text);
}

static int synced(int fd, int result) {
    if (result == 0 && tracked(fd) == FILE_IN_DIR) {
        record('S', ino_of[fd], 0, NULL, 0);
    } else if (result == 0 && tracked(fd) == THE_DIR) {
        list_directory();
    }
    return result;
}

int fsync(int fd) { return synced(fd, real_fsync(fd)); }

int fdatasync(int fd) { return synced(fd, real_fdatasync(fd)); }
