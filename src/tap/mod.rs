//! MAC addresses, MAC sets and OUI vendor lookup.
//!
//! PLACEHOLDER with the interface of INTERFACES.md section 3; the policy branch replaces it.

pub type Mac = [u8; 6];

#[derive(Clone, Default, Debug)]
pub struct MacSet {
    macs: Vec<Mac>,
}

impl MacSet {
    pub fn contains(&self, m: &Mac) -> bool {
        self.macs.binary_search(m).is_ok()
    }
    pub fn is_empty(&self) -> bool {
        self.macs.is_empty()
    }
    pub fn len(&self) -> usize {
        self.macs.len()
    }
    pub fn inserted(&self, m: Mac) -> MacSet {
        let mut s = self.clone();
        if let Err(i) = s.macs.binary_search(&m) {
            s.macs.insert(i, m);
        }
        s
    }
    pub fn removed(&self, m: &Mac) -> MacSet {
        let mut s = self.clone();
        s.macs.retain(|x| x != m);
        s
    }
    pub fn iter(&self) -> impl Iterator<Item = &Mac> {
        self.macs.iter()
    }
}

pub fn format_mac(m: &Mac) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}
