//! A sink's bounded queue: the evaluator offers without ever waiting, the sink's own task
//! takes. When full, the **oldest** alert is dropped (and counted by the caller): a
//! later change of a target supersedes an earlier one, and an operator reading the
//! receiver wants the present state, not the backlog of a sink that was down.

use std::collections::VecDeque;
use std::sync::Mutex;
use tokio::sync::Notify;

pub struct Queue<T> {
    items: Mutex<VecDeque<T>>,
    cap: usize,
    ready: Notify,
}

impl<T> Queue<T> {
    pub fn new(cap: usize) -> Queue<T> {
        Queue {
            items: Mutex::new(VecDeque::with_capacity(cap.min(1024))),
            cap: cap.max(1),
            ready: Notify::new(),
        }
    }

    /// Adds `item` at once (a short lock, never an await); returns the oldest item when it
    /// had to make room.
    pub fn offer(&self, item: T) -> Option<T> {
        let dropped = {
            let mut q = self.items.lock().unwrap_or_else(|e| e.into_inner());
            let dropped = if q.len() >= self.cap {
                q.pop_front()
            } else {
                None
            };
            q.push_back(item);
            dropped
        };
        // One consumer: a stored permit wakes it even if it is not waiting yet.
        self.ready.notify_one();
        dropped
    }

    /// The oldest item, waiting for one.
    pub async fn take(&self) -> T {
        loop {
            if let Some(item) = self
                .items
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .pop_front()
            {
                return item;
            }
            self.ready.notified().await;
        }
    }

    pub fn len(&self) -> usize {
        self.items.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_full_queue_drops_its_oldest_and_never_blocks() {
        let q = Queue::new(2);
        assert_eq!(q.offer(1), None);
        assert_eq!(q.offer(2), None);
        assert_eq!(q.offer(3), Some(1));
        assert_eq!(q.len(), 2);
        assert_eq!(q.take().await, 2);
        assert_eq!(q.take().await, 3);
        assert!(q.is_empty());
    }

    #[tokio::test]
    async fn take_waits_for_an_offer() {
        let q = std::sync::Arc::new(Queue::new(4));
        let q2 = q.clone();
        let taker = tokio::spawn(async move { q2.take().await });
        tokio::task::yield_now().await;
        q.offer(7);
        assert_eq!(taker.await.unwrap(), 7);
    }
}
