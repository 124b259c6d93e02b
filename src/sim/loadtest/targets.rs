//! Several nodes as one target (`--target URL,URL` or `--target URL --target URL`): a
//! cluster's nodes, each given an even share of the calls and SMS in turn, as a load balancer
//! without stickiness would.
//!
//! Pure: which node carries call `i` or message `n` depends on nothing else.

use super::{LoadError, Target};

/// The `--target` values, each possibly a comma-separated list: `local`, one origin, or
/// several origins (a cluster).
pub(super) fn parse(values: &[String]) -> Result<Target, LoadError> {
    let listed: Vec<&str> = values
        .iter()
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .filter(|value| !value.is_empty())
        .collect();
    match listed.as_slice() {
        [] => Err(LoadError::Invalid(
            "--target needs `local` or at least one http(s) origin".into(),
        )),
        [one] => Target::parse(one),
        several => {
            let mut origins = Vec::with_capacity(several.len());
            for text in several {
                match Target::parse(text)? {
                    Target::Remote(origin) if !origins.contains(&origin) => origins.push(origin),
                    Target::Remote(origin) => {
                        return Err(LoadError::Invalid(format!("--target lists {origin} twice")))
                    }
                    _ => {
                        return Err(LoadError::Invalid(
                            "--target: `local` cannot be one of several targets".into(),
                        ))
                    }
                }
            }
            Ok(Target::Cluster(origins))
        }
    }
}

/// The node that carries call or message number `n`: round-robin.
pub(super) fn pick(targets: &[String], n: u64) -> &str {
    let len = targets.len().max(1) as u64;
    usize::try_from(n % len)
        .ok()
        .and_then(|i| targets.get(i))
        .map_or("", String::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(list: &[&str]) -> Vec<String> {
        list.iter().map(|v| (*v).to_owned()).collect()
    }

    #[test]
    fn one_value_is_local_or_one_server_and_several_are_a_cluster() {
        assert_eq!(parse(&values(&["local"])).ok(), Some(Target::Local));
        assert_eq!(
            parse(&values(&["http://127.0.0.1:8080/"])).ok(),
            Some(Target::Remote("http://127.0.0.1:8080".into()))
        );
        let cluster = Some(Target::Cluster(vec![
            "http://127.0.0.1:8081".into(),
            "http://127.0.0.1:8082".into(),
            "http://127.0.0.1:8083".into(),
        ]));
        assert_eq!(
            parse(&values(&[
                "http://127.0.0.1:8081,http://127.0.0.1:8082",
                "http://127.0.0.1:8083"
            ]))
            .ok(),
            cluster
        );
        assert_eq!(
            parse(&values(&[
                "http://127.0.0.1:8081, http://127.0.0.1:8082,http://127.0.0.1:8083,"
            ]))
            .ok(),
            cluster
        );
    }

    #[test]
    fn bad_lists_are_refused() {
        assert!(parse(&values(&[])).is_err());
        assert!(parse(&values(&[","])).is_err());
        assert!(parse(&values(&["local,http://127.0.0.1:8081"])).is_err());
        assert!(parse(&values(&["http://127.0.0.1:8081", "127.0.0.1:8082"])).is_err());
        assert!(parse(&values(&[
            "http://127.0.0.1:8081",
            "http://127.0.0.1:8081/"
        ]))
        .is_err());
    }

    #[test]
    fn calls_and_messages_go_round_robin() {
        let nodes = values(&["a", "b", "c"]);
        let picked: Vec<&str> = (0..7).map(|n| pick(&nodes, n)).collect();
        assert_eq!(picked, ["a", "b", "c", "a", "b", "c", "a"]);
        assert_eq!(pick(&[], 3), "");
    }
}
