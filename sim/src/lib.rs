//! ferry-sim: a faithful local stand-in for what Azure has no offline emulator for.
