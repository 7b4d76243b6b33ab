//! Shared by the tests: a metrics recorder whose one counter panics, as user code that fails.

use std::sync::Arc;

/// A recorder whose counter `name` panics with `message` at every increment; every other
/// metric is a no-op.
pub struct PanickingCounter {
    pub name: &'static str,
    pub message: &'static str,
}

struct Boom(&'static str);

impl metrics::CounterFn for Boom {
    fn increment(&self, _: u64) {
        panic!("{}", self.0);
    }
    fn absolute(&self, _: u64) {}
}

impl metrics::Recorder for PanickingCounter {
    fn describe_counter(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }
    fn describe_gauge(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }
    fn describe_histogram(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }
    fn register_counter(&self, key: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Counter {
        if key.name() == self.name {
            metrics::Counter::from_arc(Arc::new(Boom(self.message)))
        } else {
            metrics::Counter::noop()
        }
    }
    fn register_gauge(&self, _: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Gauge {
        metrics::Gauge::noop()
    }
    fn register_histogram(
        &self,
        _: &metrics::Key,
        _: &metrics::Metadata<'_>,
    ) -> metrics::Histogram {
        metrics::Histogram::noop()
    }
}
