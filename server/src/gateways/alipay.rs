//! alipay client (to be implemented).
