//! wechatpay client (to be implemented).
