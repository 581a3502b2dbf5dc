/*
 * The ksp11 command: a progress indicator for long operations (RSA key
 * generation in a real TPM takes up to a minute). A thread redraws
 * "what... | 12s" on stderr a few times a second, only when stderr is a
 * terminal: logs, pipes and scripts get nothing extra.
 */
#include <pthread.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

struct ksp_progress {
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool done;
    const char *what;
    struct timespec start;
};

static void *spin(void *arg)
{
    static const char frames[] = "|/-\\";
    struct ksp_progress *p = arg;
    unsigned i = 0;

    pthread_mutex_lock(&p->lock);
    while (!p->done) {
        struct timespec now, until;
        clock_gettime(CLOCK_MONOTONIC, &now);
        long secs = (long)(now.tv_sec - p->start.tv_sec);
        fprintf(stderr, "\r%s... %c %lds", p->what, frames[i++ % 4], secs);
        fflush(stderr);
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += 250000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        while (!p->done && pthread_cond_timedwait(&p->cond, &p->lock, &until) == 0)
            ;
    }
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

/* NULL (nothing to stop) when stderr is not a terminal or no thread can start. */
struct ksp_progress *ksp_progress_start(const char *what)
{
    if (!isatty(STDERR_FILENO))
        return NULL;
    struct ksp_progress *p = calloc(1, sizeof(*p));
    if (!p)
        return NULL;
    p->what = what;
    clock_gettime(CLOCK_MONOTONIC, &p->start);
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->cond, NULL);
    if (pthread_create(&p->thread, NULL, spin, p) != 0) {
        pthread_mutex_destroy(&p->lock);
        pthread_cond_destroy(&p->cond);
        free(p);
        return NULL;
    }
    return p;
}

/* Stop the spinner and leave a final "what... done (Ns)" line. */
void ksp_progress_stop(struct ksp_progress *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->lock);
    p->done = true;
    pthread_cond_signal(&p->cond);
    pthread_mutex_unlock(&p->lock);
    pthread_join(p->thread, NULL);
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    /* \033[K: clear what is left of the spinner line. */
    fprintf(stderr, "\r%s... done (%lds)\033[K\n", p->what, (long)(now.tv_sec - p->start.tv_sec));
    fflush(stderr);
    pthread_mutex_destroy(&p->lock);
    pthread_cond_destroy(&p->cond);
    free(p);
}
