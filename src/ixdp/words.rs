//! PLACEHOLDER with the interface of INTERFACES.md section 3; the policy branch replaces it.

use super::EngineView;
use crate::rpcl::Vm;
use std::sync::Arc;

pub fn register_engine_words(_vm: &mut Vm, _engine: Arc<dyn EngineView>) {}

pub fn register_unavailable_words(_vm: &mut Vm) {}
