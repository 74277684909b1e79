//! What the benchmarks under `perf/` share: the virtual service they
//! balance over, built as rvsd builds one from its configuration.

use rvs::lb::service::{
    ForwardMethod, Protocol, RealServer, SchedulerKind, ServiceKey, ServiceTable, VirtualService,
};
use rvs::lb::xmit::Endpoint;
use std::sync::Arc;

/// A service table holding one TCP virtual service at `vip`, forwarding by
/// `forward`, round robin over `real_servers` (weight 1 each), without
/// persistence or a sorry server.
pub fn one_tcp_service(
    name: &str,
    vip: Endpoint,
    forward: ForwardMethod,
    real_servers: impl IntoIterator<Item = Endpoint>,
) -> Arc<ServiceTable> {
    Arc::new(ServiceTable::new(vec![VirtualService {
        name: name.into(),
        key: ServiceKey {
            vip,
            protocol: Protocol::Tcp,
        },
        forward,
        scheduler: SchedulerKind::Rr,
        mh_table_size: 65537,
        persistence: None,
        expire_nodest_conn: true,
        sorry_server: None,
        real_servers: real_servers
            .into_iter()
            .map(|endpoint| RealServer {
                endpoint,
                weight: 1,
            })
            .collect(),
    }]))
}
