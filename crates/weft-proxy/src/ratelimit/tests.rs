use super::*;

fn rate(requests: u32, per: Duration, burst: u32) -> Rate {
    Rate {
        requests,
        per,
        burst,
    }
}

fn per_second(requests: u32, burst: u32) -> Rate {
    rate(requests, Duration::from_secs(1), burst)
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn limited(retry_after: Duration) -> Decision {
    Decision::Limited { retry_after }
}

#[test]
fn ten_per_second_allows_a_burst_of_ten_then_one_every_hundred_milliseconds() {
    let bucket = Bucket::new(per_second(10, 10));
    let t = Instant::now();
    for i in 0..10 {
        assert_eq!(bucket.check(t), Decision::Allowed, "request {i}");
    }
    assert_eq!(bucket.check(t), limited(ms(100)));
    assert_eq!(bucket.check(t + ms(40)), limited(ms(60)));
    assert_eq!(
        bucket.check(t + ms(100)),
        Decision::Allowed,
        "the refusals did not push it back"
    );
    assert_eq!(bucket.check(t + ms(100)), limited(ms(100)));
    assert!(bucket.check(t + ms(200)).is_allowed());
}

#[test]
fn sustained_load_passes_the_rate_plus_the_burst() {
    let (requests, burst) = (100, 10);
    let bucket = Bucket::new(per_second(requests, burst));
    let t = Instant::now();
    // 1000 attempts a second for 10 seconds.
    let passed = (0..10_000)
        .filter(|&i| bucket.check(t + ms(i)).is_allowed())
        .count();
    // The burst, then one every 10 ms: at most the burst plus one for each whole
    // interval between the first attempt and the last (9.999 s), which is one
    // less than 10 × rate.
    let most = usize::try_from(10 * requests + burst).expect("small");
    assert!((most - 1..=most).contains(&passed), "{passed} passed");
    assert_eq!(passed, most - 1);
}

#[test]
fn burst_of_one_spaces_requests_by_the_interval() {
    let bucket = Bucket::new(per_second(5, 1));
    let t = Instant::now();
    assert!(bucket.check(t).is_allowed());
    assert_eq!(bucket.check(t), limited(ms(200)));
    assert_eq!(bucket.check(t + ms(199)), limited(ms(1)));
    assert!(bucket.check(t + ms(200)).is_allowed());
    assert_eq!(bucket.check(t + ms(300)), limited(ms(100)));
    assert!(bucket.check(t + ms(400)).is_allowed());
    // A quiet spell does not save up more than the burst.
    assert!(bucket.check(t + ms(10_000)).is_allowed());
    assert_eq!(bucket.check(t + ms(10_000)), limited(ms(200)));
}

#[test]
fn identity_buckets_are_independent_and_callers_without_one_share_another() {
    let limiter = Limiter::new(&[Limit {
        rate: per_second(1, 2),
        by: By::Identity,
    }]);
    let t = Instant::now();
    let a = Some("spiffe://mesh.local/ns/default/sa/a");
    let b = Some("spiffe://mesh.local/ns/default/sa/b");
    for caller in [a, a] {
        assert!(limiter.check(0, caller, t).is_allowed());
    }
    assert!(!limiter.check(0, a, t).is_allowed(), "a used its burst");
    for caller in [b, b, None, None] {
        assert!(limiter.check(0, caller, t).is_allowed(), "{caller:?}");
    }
    assert!(!limiter.check(0, b, t).is_allowed());
    assert!(
        !limiter.check(0, None, t).is_allowed(),
        "plaintext callers share one bucket"
    );
}

#[test]
fn a_workload_limit_is_shared_by_every_caller() {
    let limiter = Limiter::new(&[Limit {
        rate: per_second(1, 2),
        by: By::Workload,
    }]);
    let t = Instant::now();
    assert!(limiter.check(0, Some("spiffe://a"), t).is_allowed());
    assert!(limiter.check(0, None, t).is_allowed());
    assert!(!limiter.check(0, Some("spiffe://b"), t).is_allowed());
    assert!(
        limiter.check(1, None, t).is_allowed(),
        "no limit at that index"
    );
}

#[test]
fn keys_stay_bounded_under_many_identities_and_new_callers_are_never_refused() {
    let keyed = Keyed::new(rate(1, Duration::from_secs(3600), 1), 1000);
    let t = Instant::now();
    for i in 0..100_000 {
        let key = format!("spiffe://mesh.local/ns/default/sa/{i}");
        assert!(keyed.check(Some(&key), t).is_allowed(), "{key}");
        assert!(keyed.len() <= 1000);
    }
    assert!(keyed.len() > 800, "{} keys", keyed.len());
    let default = Keyed::new(per_second(1, 1), DEFAULT_MAX_KEYS);
    for i in 0..100_000 {
        assert!(default.check(Some(&i.to_string()), t).is_allowed());
    }
    assert!(default.len() <= DEFAULT_MAX_KEYS);
}

#[test]
fn a_full_shard_forgets_idle_buckets_first() {
    let keyed = Keyed::with_shards(per_second(1, 1), 2, 1);
    let t = Instant::now();
    assert!(keyed.check(Some("idle"), t).is_allowed());
    assert!(keyed.check(Some("busy"), t + ms(900)).is_allowed());
    // At t + 1 s "idle" is full again; "busy" owes 900 ms.
    assert!(keyed.check(Some("new"), t + ms(1000)).is_allowed());
    assert_eq!(keyed.len(), 2);
    assert_eq!(
        keyed.check(Some("busy"), t + ms(1000)),
        limited(ms(900)),
        "kept"
    );
    assert!(!keyed.check(Some("new"), t + ms(1000)).is_allowed());
}

#[test]
fn a_shard_of_busy_buckets_forgets_the_one_closest_to_full() {
    let keyed = Keyed::with_shards(per_second(1, 1), 2, 1);
    let t = Instant::now();
    assert!(keyed.check(Some("early"), t).is_allowed());
    assert!(keyed.check(Some("late"), t + ms(500)).is_allowed());
    assert!(keyed.check(Some("new"), t + ms(600)).is_allowed());
    assert_eq!(keyed.len(), 2);
    assert_eq!(
        keyed.check(Some("late"), t + ms(600)),
        limited(ms(900)),
        "kept"
    );
    assert!(
        keyed.check(Some("early"), t + ms(600)).is_allowed(),
        "forgotten: back with a full bucket"
    );
}

#[test]
fn carry_over_keeps_an_exhausted_bucket_when_the_limit_is_unchanged() {
    let workload = Limit {
        rate: per_second(10, 10),
        by: By::Workload,
    };
    let identity = Limit {
        rate: per_second(1, 1),
        by: By::Identity,
    };
    let old = Limiter::new(&[workload, identity]);
    let t = Instant::now();
    for _ in 0..10 {
        assert!(old.check(0, None, t).is_allowed());
    }
    assert!(old.check(1, Some("spiffe://a"), t).is_allowed());

    let same = old.carry_over(&[workload, identity]);
    assert_eq!(same.check(0, None, t), limited(ms(100)));
    assert!(!same.check(1, Some("spiffe://a"), t).is_allowed());

    // A route added in front: the limits moved, their buckets with them.
    let extra = Limit {
        rate: per_second(5, 5),
        by: By::Workload,
    };
    let moved = same.carry_over(&[extra, workload, identity]);
    assert!(moved.check(0, None, t).is_allowed(), "new limit, full");
    assert!(!moved.check(1, None, t).is_allowed());
    assert!(!moved.check(2, Some("spiffe://a"), t).is_allowed());
}

#[test]
fn carry_over_resets_a_bucket_whose_rate_changed() {
    let before = Limit {
        rate: per_second(10, 10),
        by: By::Workload,
    };
    let old = Limiter::new(&[before]);
    let t = Instant::now();
    for _ in 0..10 {
        assert!(old.check(0, None, t).is_allowed());
    }
    assert!(!old.check(0, None, t).is_allowed());
    let after = Limit {
        rate: per_second(20, 10),
        ..before
    };
    let new = old.carry_over(&[after]);
    for _ in 0..10 {
        assert!(new.check(0, None, t).is_allowed());
    }
    assert_eq!(new.check(0, None, t), limited(ms(50)));
    let by_identity = old.carry_over(&[Limit {
        by: By::Identity,
        ..before
    }]);
    assert!(by_identity.check(0, None, t).is_allowed(), "changed `by`");
}

#[test]
fn concurrent_callers_at_one_instant_get_exactly_the_burst() {
    let bucket = Bucket::new(per_second(100, 100));
    let keyed = Keyed::new(per_second(100, 100), DEFAULT_MAX_KEYS);
    let t = Instant::now();
    let (from_bucket, from_keyed) = std::thread::scope(|s| {
        let threads: Vec<_> = (0..8)
            .map(|_| {
                s.spawn(|| {
                    let mut passed = (0, 0);
                    for _ in 0..10_000 {
                        passed.0 += usize::from(bucket.check(t).is_allowed());
                        passed.1 += usize::from(keyed.check(Some("spiffe://a"), t).is_allowed());
                    }
                    passed
                })
            })
            .collect();
        threads
            .into_iter()
            .map(|h| h.join().expect("thread"))
            .fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1))
    });
    assert_eq!(from_bucket, 100);
    assert_eq!(from_keyed, 100);
}

#[test]
fn degenerate_rates_do_not_panic_and_behave_as_documented() {
    let t = Instant::now();
    let minute = Duration::from_secs(60);
    let none = Bucket::new(rate(0, minute, 10));
    assert_eq!(none.check(t), limited(minute), "requests 0: none pass");
    let none = Keyed::new(rate(0, Duration::ZERO, 0), 0);
    assert_eq!(none.check(Some("a"), t), limited(Duration::from_secs(1)));
    assert_eq!(none.check(None, t), limited(Duration::from_secs(1)));

    let open = Bucket::new(rate(10, Duration::ZERO, 1));
    assert!(
        (0..10_000).all(|_| open.check(t).is_allowed()),
        "per 0: all pass"
    );
    let open = Keyed::new(rate(1, Duration::ZERO, 0), 10);
    assert!((0..10_000).all(|i| open.check(Some(&i.to_string()), t).is_allowed()));
    assert!(open.is_empty(), "nothing to remember");

    let zero = Bucket::new(per_second(5, 0));
    let one = Bucket::new(per_second(5, 1));
    for i in [0, 0, 100, 199, 200, 200, 450, 600] {
        assert_eq!(zero.check(t + ms(i)), one.check(t + ms(i)), "burst 0 is 1");
    }

    let slow = Bucket::new(rate(1, Duration::MAX, 1));
    assert!(slow.check(t).is_allowed());
    assert!(!slow.check(t + minute).is_allowed());
    let huge = Bucket::new(rate(1, Duration::MAX, u32::MAX));
    assert!((0..1000).all(|_| huge.check(t).is_allowed()));
    let fast = Bucket::new(rate(u32::MAX, Duration::from_nanos(1), u32::MAX));
    assert!((0..1000).all(|_| fast.check(t).is_allowed()));

    let one_key = Keyed::new(per_second(1, 1), 0);
    assert!(one_key.check(Some("a"), t).is_allowed());
    assert!(one_key.check(Some("b"), t).is_allowed());
    assert_eq!(one_key.len(), 1, "max_keys 0 keeps one");

    // `t` was taken before these buckets were made.
    let early = Bucket::new(per_second(1, 1));
    let before = t.checked_sub(ms(500)).unwrap_or(t);
    assert!(early.check(before).is_allowed());
    assert_eq!(early.check(before), limited(ms(1000)));
    assert_eq!(early.check(before + ms(300)), limited(ms(700)));
    assert!(early.check(before + ms(1000)).is_allowed());
}

#[test]
fn retry_after_seconds_rounds_up_and_is_at_least_one() {
    assert_eq!(retry_after_seconds(Duration::ZERO), 1);
    assert_eq!(retry_after_seconds(Duration::from_nanos(1)), 1);
    assert_eq!(retry_after_seconds(ms(100)), 1);
    assert_eq!(retry_after_seconds(Duration::from_secs(1)), 1);
    assert_eq!(retry_after_seconds(ms(1001)), 2);
    assert_eq!(retry_after_seconds(Duration::from_secs(30)), 30);
    assert_eq!(retry_after_seconds(Duration::MAX), u64::MAX);
}
