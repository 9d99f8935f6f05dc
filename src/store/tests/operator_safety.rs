//! The org's last active admin key is never revoked, even when two admins revoke each other's
//! keys at the same moment (on every backend).

use super::*;

async fn admin_key(store: &Store, org_id: &str, id: &str) {
    keys::create(
        store,
        keys::NewKey {
            id,
            org_id,
            name: id,
            role: Role::Admin,
            prefix: "sk_live_test",
            key_digest: &format!("digest-{id}"),
        },
        &Actor::operator(),
    )
    .await
    .expect("key");
}

#[tokio::test]
async fn two_admins_revoking_each_other_leave_one() {
    for (store, _dir) in backends().await {
        for round in 0..10 {
            let org = orgs::create(&store, &format!("org-{}", new_id()), &Actor::operator())
                .await
                .expect("org");
            let (first, second) = (format!("a-{round}-{}", new_id()), format!("b-{}", new_id()));
            admin_key(&store, &org.id, &first).await;
            admin_key(&store, &org.id, &second).await;
            let actor = Actor(format!("key:{first}"));
            let (one, two) = tokio::join!(
                keys::revoke(&store, &org.id, &first, &actor),
                keys::revoke(&store, &org.id, &second, &actor),
            );
            let outcomes = [one, two];
            let revoked = outcomes
                .iter()
                .filter(|outcome| matches!(outcome, Ok(Some(row)) if row.revoked_at.is_some()))
                .count();
            let refused = outcomes
                .iter()
                .filter(|outcome| matches!(outcome, Err(Error::Conflict(_))))
                .count();
            assert_eq!(
                (revoked, refused),
                (1, 1),
                "round {round} on {}: {outcomes:?}",
                store.backend_name()
            );
            let active = keys::list(&store, &org.id, None, 1000)
                .await
                .unwrap()
                .0
                .into_iter()
                .filter(|row| row.revoked_at.is_none())
                .count();
            assert_eq!(active, 1);
            assert_eq!(audit::verify(&store, &org.id).await.unwrap(), None);
        }
    }
}
