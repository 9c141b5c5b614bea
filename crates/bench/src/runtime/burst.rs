//! Many users at once: a burst of starts against as many plain `docker run`s, and reconciler
//! passes over many bindings.

use super::*;

impl Bench {
    pub(super) async fn burst(&self, settings: &RuntimeSettings, users: usize) -> Result<()> {
        let orchestrator = self.orchestrator(settings);
        let workers = orchestrator.spawn();
        let names: Vec<(Uuid, String)> = (0..users)
            .map(|i| (Uuid::new_v4(), format!("burst{i}")))
            .collect();
        let started = Instant::now();
        let requests = names.iter().map(|(id, name)| {
            orchestrator.request(
                UserRef {
                    id: *id,
                    username: name,
                },
                Action::Start,
                false,
                "bench",
            )
        });
        for result in futures_util::future::join_all(requests).await {
            result?;
        }
        let deadline = Instant::now() + Duration::from_secs(600);
        let (succeeded, failed) = loop {
            let (succeeded, failed): (i64, i64) = sqlx::query_as(
                "SELECT count(*) FILTER (WHERE status = 'succeeded'),
                        count(*) FILTER (WHERE status IN ('failed', 'canceled'))
                   FROM runtime_tasks WHERE action = 'start' AND user_id = ANY($1)",
            )
            .bind(names.iter().map(|(id, _)| *id).collect::<Vec<_>>())
            .fetch_one(&self.pool)
            .await?;
            if usize::try_from(succeeded + failed).unwrap_or(0) >= users
                || Instant::now() > deadline
            {
                break (succeeded, failed);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let ours = started.elapsed();
        for worker in workers {
            worker.abort();
        }
        let containers = self
            .driver
            .list()
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let healthy = containers
            .iter()
            .filter(|c| c.phase == clawloops_driver::Phase::Running)
            .count();

        let started = Instant::now();
        let plain = names
            .iter()
            .map(|(_, name)| self.plain_start(settings, name, false));
        let results = futures_util::future::join_all(plain).await;
        let plain_time = started.elapsed();
        let plain_ok = results.iter().filter(|r| r.is_ok()).count();
        if let Some(Err(e)) = results.iter().find(|r| r.is_err()) {
            println!("   plain docker run error: {e}");
        }
        println!(
            "   clawloops: {succeeded}/{users} healthy tasks, {failed} failed, {healthy} running containers, total {:.2} s",
            ours.as_secs_f64()
        );
        println!(
            "   plain:     {plain_ok}/{users} healthy, total {:.2} s",
            plain_time.as_secs_f64()
        );
        println!(
            "   ratio clawloops/plain: {:.2}",
            ours.as_secs_f64() / plain_time.as_secs_f64()
        );
        remove_labelled("org.clawloops.bench", &self.instance.to_string()).await;
        if failed > 0 || healthy < users {
            bail!("the burst was not clean: {failed} failed, {healthy} of {users} running");
        }
        Ok(())
    }

    pub(super) async fn reconcile(
        &self,
        settings: &RuntimeSettings,
        bindings: usize,
        passes: usize,
    ) -> Result<()> {
        let existing: i64 = sqlx::query_scalar("SELECT count(*) FROM runtimes")
            .fetch_one(&self.pool)
            .await?;
        let missing = i64::try_from(bindings)?.saturating_sub(existing);
        // Stopped runtimes of other users, as after a working day.
        sqlx::query(
            "INSERT INTO runtimes (user_id, username, runtime_id, profile, image, gateway_token)
             SELECT gen_random_uuid(), 'idle' || n, 'rt-idle' || n, $2, $3, md5(random()::text)
               FROM generate_series(1, $1) AS n",
        )
        .bind(missing)
        .bind(&settings.profile_name)
        .bind(&settings.image)
        .execute(&self.pool)
        .await?;
        let orchestrator = self.orchestrator(settings);
        let mut times = Vec::with_capacity(passes);
        let mut last = None;
        for _ in 0..passes {
            let started = Instant::now();
            let report = orchestrator.reconcile().await?;
            times.push(ms(started.elapsed()));
            last = Some(report);
        }
        let (median, min, max) = stats(&mut times);
        let report = last.context("no pass")?;
        println!(
            "   {} bindings, {} containers: median {median:.1} ms (min {min:.1}, max {max:.1}) over {passes} passes; goal < 200 ms",
            report.bindings, report.containers
        );
        Ok(())
    }
}
