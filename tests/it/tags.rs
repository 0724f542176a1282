use reqwest::StatusCode;
use serde_json::json;

use crate::support::*;

/// Pushes one image to `repo` under every one of `tags`; returns its manifest.
async fn tagged(s: &TestServer, repo: &str, tags: &[&str]) -> Vec<u8> {
    let (manifest, _) = s.push_image(repo, tags[0], 1).await;
    for t in &tags[1..] {
        assert_eq!(
            s.put_manifest(repo, t, OCI_MANIFEST, &manifest)
                .await
                .status(),
            StatusCode::CREATED
        );
    }
    manifest
}

// Spec: tags are listed in lexical order.
#[tokio::test]
async fn tags_are_listed_in_lexical_order() {
    let s = TestServer::start().await;
    tagged(&s, "app", &["v2", "latest", "V1", "a", "v10"]).await;
    let body = json_body(s.get("/v2/app/tags/list").await).await;
    assert_eq!(
        body,
        json!({ "name": "app", "tags": ["V1", "a", "latest", "v10", "v2"] })
    );
}

// Spec: `n` limits the page, `last` starts after a tag, and a Link header points
// to the next page while there is one.
#[tokio::test]
async fn tags_paginate_with_n_last_and_link() {
    let s = TestServer::start().await;
    tagged(&s, "app", &["t1", "t2", "t3", "t4", "t5"]).await;
    let r = s.get("/v2/app/tags/list?n=2").await;
    assert_eq!(
        header(&r, "link").as_deref(),
        Some("</v2/app/tags/list?n=2&last=t2>; rel=\"next\"")
    );
    assert_eq!(json_body(r).await["tags"], json!(["t1", "t2"]));
    let r = s.get("/v2/app/tags/list?n=2&last=t2").await;
    assert_eq!(json_body(r).await["tags"], json!(["t3", "t4"]));
    let r = s.get("/v2/app/tags/list?n=2&last=t4").await;
    assert!(header(&r, "link").is_none(), "no next page after the last");
    assert_eq!(json_body(r).await["tags"], json!(["t5"]));
    let r = s.get("/v2/app/tags/list?n=0").await;
    assert_eq!(json_body(r).await["tags"], json!([]));
    let r = s.get("/v2/app/tags/list?last=t3").await;
    assert_eq!(json_body(r).await["tags"], json!(["t4", "t5"]));
}

#[tokio::test]
async fn the_server_caps_n() {
    let s = TestServer::with_config(|c| c.registry.max_page_size = 3).await;
    tagged(&s, "app", &["a", "b", "c", "d"]).await;
    let r = s.get("/v2/app/tags/list?n=1000").await;
    assert_eq!(
        header(&r, "link").as_deref(),
        Some("</v2/app/tags/list?n=3&last=c>; rel=\"next\"")
    );
    assert_eq!(json_body(r).await["tags"], json!(["a", "b", "c"]));
}

#[tokio::test]
async fn unknown_repositories_and_bad_n_are_errors() {
    let s = TestServer::start().await;
    let r = s.get("/v2/nobody/tags/list").await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(error_code(r).await, "NAME_UNKNOWN");
    tagged(&s, "app", &["a"]).await;
    let r = s.get("/v2/app/tags/list?n=-1").await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
}

// Listings and look-ups answered from memory never outlive a write: a tag
// added, moved or deleted shows in the very next request.
#[tokio::test]
async fn a_tag_change_shows_in_the_next_listing_and_look_up() {
    let s = TestServer::start().await;
    let (_, first) = s.push_image("app", "v1", 1).await;
    for _ in 0..2 {
        assert_eq!(
            json_body(s.get("/v2/app/tags/list").await).await["tags"],
            json!(["v1"])
        );
        assert_eq!(
            header(
                &s.head("/v2/app/manifests/v1").await,
                "docker-content-digest"
            ),
            Some(first.clone())
        );
    }
    let (second, second_digest) = s.push_image("app", "v2", 2).await;
    assert_eq!(
        json_body(s.get("/v2/app/tags/list").await).await["tags"],
        json!(["v1", "v2"])
    );
    // Move v1 to the second image.
    assert_eq!(
        s.put_manifest("app", "v1", OCI_MANIFEST, &second)
            .await
            .status(),
        StatusCode::CREATED
    );
    assert_eq!(
        header(
            &s.head("/v2/app/manifests/v1").await,
            "docker-content-digest"
        ),
        Some(second_digest)
    );
    // A move leaves the names as they were; a new tag, and one deleted with
    // its manifest, change them.
    assert_eq!(
        json_body(s.get("/v2/app/tags/list").await).await["tags"],
        json!(["v1", "v2"])
    );
    let (_, third) = s.push_image("app", "v3", 3).await;
    assert_eq!(
        json_body(s.get("/v2/app/tags/list").await).await["tags"],
        json!(["v1", "v2", "v3"])
    );
    assert_eq!(
        s.delete(&format!("/v2/app/manifests/{third}"))
            .await
            .status(),
        StatusCode::ACCEPTED
    );
    assert_eq!(
        json_body(s.get("/v2/app/tags/list").await).await["tags"],
        json!(["v1", "v2"])
    );
    assert_eq!(
        s.delete("/v2/app/manifests/v2").await.status(),
        StatusCode::ACCEPTED
    );
    assert_eq!(
        json_body(s.get("/v2/app/tags/list").await).await["tags"],
        json!(["v1"])
    );
    assert_eq!(
        s.head("/v2/app/manifests/v2").await.status(),
        StatusCode::NOT_FOUND
    );
}

/// Every page of `repo`'s tags, `n` at a time, walked by the Link header.
async fn pages(s: &TestServer, repo: &str, n: usize) -> Vec<Vec<String>> {
    let mut url = format!("/v2/{repo}/tags/list?n={n}");
    let mut pages = Vec::new();
    loop {
        let r = s.get(&url).await;
        let link = header(&r, "link");
        let body = json_body(r).await;
        pages.push(serde_json::from_value(body["tags"].clone()).expect("tags"));
        let Some(link) = link else {
            return pages;
        };
        url = link
            .trim_start_matches('<')
            .split('>')
            .next()
            .expect("link")
            .to_owned();
    }
}

// Kept pages are brought up to date with the tags created and deleted since
// they were read: a name inside a full page, after the last page, deleted
// from a full page (the next page's first name moves up), several at once.
#[tokio::test]
async fn kept_pages_follow_tags_created_and_deleted() {
    let s = TestServer::start().await;
    let mut names: std::collections::BTreeSet<String> =
        ["a", "c", "e", "g", "i", "k", "m"].map(String::from).into();
    let listed: Vec<&str> = names.iter().map(String::as_str).collect();
    let manifest = tagged(&s, "app", &listed).await;
    let steps: [(&[&str], &[&str]); 5] = [
        (&["d"], &[]),
        (&["n"], &[]),
        (&[], &["c"]),
        (&[], &["n"]),
        (&["b", "h"], &["k", "a"]),
    ];
    for (created, deleted) in steps {
        for _ in 0..2 {
            let expected: Vec<Vec<String>> = names
                .iter()
                .cloned()
                .collect::<Vec<_>>()
                .chunks(3)
                .map(<[String]>::to_vec)
                .collect();
            assert_eq!(pages(&s, "app", 3).await, expected);
            assert_eq!(
                json_body(s.get("/v2/app/tags/list").await).await["tags"],
                json!(names)
            );
        }
        for t in created {
            let r = s.put_manifest("app", t, OCI_MANIFEST, &manifest).await;
            assert_eq!(r.status(), StatusCode::CREATED);
            names.insert(t.to_string());
        }
        for t in deleted {
            let r = s.delete(&format!("/v2/app/manifests/{t}")).await;
            assert_eq!(r.status(), StatusCode::ACCEPTED);
            names.remove(*t);
        }
    }
}
