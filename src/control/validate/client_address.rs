//! `client_address` of a `[[virtual_server]]` (`crate::lb::client_addr`):
//! `"proxy-v2"` or `"toa"`, for TCP services whose segments both ways
//! pass through the balancer and may change size and sequence numbers:
//! NAT (and FullNAT). Not with `syn_proxy`, whose own sequence
//! translation the insertion would have to compose with.

use super::{Errors, S};
use crate::control::config::{ForwardMethod, Protocol};
use crate::lb::client_addr::ClientAddress;

/// The mode `v` names, refused (`None`) with the field named where it
/// cannot work; `Some(None)` when absent.
pub(super) fn client_address(
    v: Option<&S<String>>,
    field: &str,
    forward: Option<ForwardMethod>,
    protocol: Option<Protocol>,
    syn_proxy: bool,
    errors: &mut Errors,
) -> Option<Option<ClientAddress>> {
    let Some(v) = v else {
        return Some(None);
    };
    let Some(mode) = ClientAddress::from_name(v.get_ref()) else {
        errors.push(
            field,
            Some(v.span()),
            format!(
                "unknown client_address \"{}\": expected \"proxy-v2\" or \"toa\"",
                v.get_ref()
            ),
        );
        return None;
    };
    if protocol == Some(Protocol::Udp) {
        errors.push(
            field,
            Some(v.span()),
            "client_address is for TCP services: a PROXY header or TOA option rides on a \
             TCP connection, and UDP has none",
        );
        return None;
    }
    if let Some(f @ (ForwardMethod::Dr | ForwardMethod::Tun)) = forward {
        errors.push(
            field,
            Some(v.span()),
            format!(
                "client_address needs forward = \"nat\" or \"fullnat\", not \"{f}\": inserting bytes \
                 changes sequence numbers and sizes, which the balancer must translate on \
                 the replies, and {f} replies bypass the balancer"
            ),
        );
        return None;
    }
    if syn_proxy {
        errors.push(
            field,
            Some(v.span()),
            "client_address cannot be combined with syn_proxy = true (both translate \
             sequence numbers); choose one",
        );
        return None;
    }
    Some(Some(mode))
}

#[cfg(test)]
mod tests {
    use super::super::testing::{the_error, HEAD};
    use crate::control::config::Config;
    use crate::lb::client_addr::ClientAddress;

    const RS: &str = "[[virtual_server.real_server]]\naddress = \"10.0.0.11:8080\"\n";

    fn parse(keys: &str) -> Config {
        Config::from_toml_str(&format!("{HEAD}{keys}{RS}")).expect("valid")
    }

    #[test]
    fn client_address_is_absent_by_default() {
        assert_eq!(parse("").virtual_servers[0].client_address, None);
    }

    #[test]
    fn proxy_v2_and_toa_are_accepted_for_nat() {
        let c = parse("client_address = \"proxy-v2\"\n");
        assert_eq!(
            c.virtual_servers[0].client_address,
            Some(ClientAddress::ProxyV2)
        );
        let c = parse("client_address = \"toa\"\n");
        assert_eq!(
            c.virtual_servers[0].client_address,
            Some(ClientAddress::Toa)
        );
    }

    #[test]
    fn an_unknown_mode_is_refused_naming_the_field() {
        let (field, msg) = the_error(&format!("{HEAD}client_address = \"v1\"\n{RS}"));
        assert_eq!(field, "virtual_server[0].client_address");
        assert!(msg.contains("\"proxy-v2\" or \"toa\""), "{msg}");
    }

    #[test]
    fn udp_services_are_refused() {
        let (field, msg) = the_error(&format!(
            "{HEAD}protocol = \"udp\"\nclient_address = \"toa\"\n{RS}"
        ));
        assert_eq!(field, "virtual_server[0].client_address");
        assert!(msg.contains("TCP services"), "{msg}");
    }

    #[test]
    fn dr_and_tun_are_refused() {
        for forward in ["dr", "tun"] {
            let head = HEAD.replace("forward = \"nat\"", &format!("forward = \"{forward}\""));
            let rs = RS.replace(":8080", ":80");
            let (field, msg) = the_error(&format!("{head}client_address = \"proxy-v2\"\n{rs}"));
            assert_eq!(field, "virtual_server[0].client_address");
            assert!(msg.contains("bypass"), "{msg}");
        }
    }

    #[test]
    fn the_syn_proxy_is_refused_with_it() {
        let (field, msg) = the_error(&format!(
            "{HEAD}syn_proxy = true\nclient_address = \"toa\"\n{RS}"
        ));
        assert_eq!(field, "virtual_server[0].client_address");
        assert!(msg.contains("syn_proxy"), "{msg}");
    }
}
