/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdalign.h>
#include <stdlib.h>
#include <string.h>

#include "ipc/queue.h"

int queue_init(Queue *q, uint32_t depth_max, uint32_t message_bytes_max)
{
        if (depth_max < 1 || depth_max > QUEUE_DEPTH_LIMIT || message_bytes_max < 1 ||
            message_bytes_max > QUEUE_MESSAGE_MAX)
                return -EINVAL;
        *q = (Queue){
                .depth_max = depth_max,
                .message_bytes_max = message_bytes_max,
                .next_seq = 1,
        };
        return 0;
}

void queue_clear(Queue *q)
{
        for (unsigned p = 0; p < QUEUE_PRIORITIES; p++) {
                QueueMsg *m = q->head[p];

                while (m) {
                        QueueMsg *next = m->next;

                        free(m);
                        m = next;
                }
                q->head[p] = q->tail[p] = NULL;
        }
        q->busy = 0;
        q->depth = 0;
        q->bytes = 0;
}

QueueMsg *queue_msg_new(uint32_t priority, const char *sender, const void *data, size_t len)
{
        size_t sl;
        QueueMsg *m;
        char *s;

        sender = sender ? sender : "";
        sl = strnlen(sender, QUEUE_SENDER_MAX + 1);
        if (priority > QUEUE_PRIORITY_MAX || len > QUEUE_MESSAGE_MAX || sl > QUEUE_SENDER_MAX ||
            (len > 0 && !data)) {
                errno = EINVAL;
                return NULL;
        }
        /* header, data, then the sender's id after the data */
        m = malloc(sizeof(*m) + len + sl + 1);
        if (!m) {
                errno = ENOMEM;
                return NULL;
        }
        m->next = NULL;
        m->seq = 0;
        m->priority = priority;
        m->len = (uint32_t)len;
        m->charged = false;
        if (len > 0)
                memcpy(m->data, data, len);
        s = (char *)m->data + len;
        memcpy(s, sender, sl);
        s[sl] = '\0';
        m->sender = s;
        return m;
}

int queue_room(const Queue *q, size_t n)
{
        return n > q->depth_max || q->depth > q->depth_max - n ? -EAGAIN : 0;
}

bool queue_msg_fits(const Queue *q, size_t len)
{
        return len <= q->message_bytes_max;
}

void queue_push(Queue *q, QueueMsg *m)
{
        unsigned p = m->priority & QUEUE_PRIORITY_MAX;

        if (m->seq == 0)
                m->seq = q->next_seq++;
        else if (m->seq >= q->next_seq)
                q->next_seq = m->seq + 1;
        m->next = NULL;
        if (q->tail[p])
                q->tail[p]->next = m;
        else
                q->head[p] = m;
        q->tail[p] = m;
        q->busy |= 1u << p;
        q->depth++;
        q->bytes += m->len;
}

void queue_push_front(Queue *q, QueueMsg *m)
{
        unsigned p = m->priority & QUEUE_PRIORITY_MAX;

        m->next = q->head[p];
        q->head[p] = m;
        if (!q->tail[p])
                q->tail[p] = m;
        q->busy |= 1u << p;
        q->depth++;
        q->bytes += m->len;
}

static int top_priority(const Queue *q)
{
        return q->busy ? 31 - __builtin_clz(q->busy) : -1;
}

const QueueMsg *queue_peek(const Queue *q)
{
        int p = top_priority(q);

        return p < 0 ? NULL : q->head[p];
}

QueueMsg *queue_pop(Queue *q)
{
        int p = top_priority(q);
        QueueMsg *m;

        if (p < 0)
                return NULL;
        m = q->head[p];
        q->head[p] = m->next;
        if (!q->head[p]) {
                q->tail[p] = NULL;
                q->busy &= ~(1u << p);
        }
        m->next = NULL;
        q->depth--;
        q->bytes -= m->len;
        return m;
}

void queue_move(Queue *to, Queue *from)
{
        *to = *from;
        memset(from->head, 0, sizeof(from->head));
        memset(from->tail, 0, sizeof(from->tail));
        from->busy = 0;
        from->depth = 0;
        from->bytes = 0;
}
