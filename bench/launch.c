/* The benchmark's launcher: runs one command and writes what it cost.
 *
 *   launch OUT PROG [ARG]...  →  OUT holds "wall_ns maxrss_kib utime_us stime_us exit"
 *
 * Why not time it from Python: a process forked from Python inherits Python's
 * resident-memory high-water mark (Linux carries the old mm's peak into
 * `signal->maxrss` at exec), so wait4's ru_maxrss of anything Python starts is
 * at least Python's own size. Forked from this small process instead, wait4's
 * figure is the command's peak, or that of the largest process it waited for
 * (its children: the "including children" figure, as /usr/bin/time -v shows
 * it), plus nothing of ours beyond this launcher's ~1 MiB at fork.
 * The wall time runs from just before fork to just after wait4. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static long long ns(struct timespec t) { return t.tv_sec * 1000000000LL + t.tv_nsec; }

static long long us(struct timeval t) { return t.tv_sec * 1000000LL + t.tv_usec; }

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: launch OUT PROG [ARG]...\n");
        return 2;
    }
    struct timespec start, end;
    clock_gettime(CLOCK_MONOTONIC, &start);
    pid_t pid = fork();
    if (pid < 0) {
        perror("launch: fork");
        return 2;
    }
    if (pid == 0) {
        execvp(argv[2], argv + 2);
        perror("launch: exec");
        _exit(127);
    }
    int status;
    struct rusage ru;
    if (wait4(pid, &status, 0, &ru) < 0) {
        perror("launch: wait4");
        return 2;
    }
    clock_gettime(CLOCK_MONOTONIC, &end);
    int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    FILE *out = fopen(argv[1], "w");
    if (!out) {
        perror("launch: output");
        return 2;
    }
    fprintf(out, "%lld %ld %lld %lld %d\n", ns(end) - ns(start), ru.ru_maxrss, us(ru.ru_utime),
            us(ru.ru_stime), code);
    fclose(out);
    return code;
}
