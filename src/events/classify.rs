//! Bot and scanner classification (filled in next).
