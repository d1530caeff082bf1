//! RealBird harness (being written).
