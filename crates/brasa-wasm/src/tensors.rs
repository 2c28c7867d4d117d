//! Named tensors between JS and Rust: `{ name, dtype, dims, data }` objects whose `data` is a
//! typed array, as onnxruntime-web carries them.
//!
//! | dtype     | `data`                                                      |
//! |-----------|-------------------------------------------------------------|
//! | `float32` | `Float32Array` (also read: `Float64Array`, Array of numbers) |
//! | `float16` | `Uint16Array` of the IEEE binary16 bits                     |
//! | `int64`   | `BigInt64Array`                                             |
//! | `int32`   | `Int32Array`                                                |
//! | `uint8`   | `Uint8Array` (also read: `Uint8ClampedArray`)               |
//! | `bool`    | `Uint8Array` of 0/1 (also read: Array of booleans)          |
//! | `string`  | Array of strings                                            |
//!
//! Reading never panics and never lets JS throw through Rust: typed arrays are recognised
//! with `instanceof` before any of their methods is called, and every refusal names the
//! tensor.

use brasa_types::{DType, HostTensor, TensorMap, Values};
use js_sys::{
    Array, BigInt64Array, Float32Array, Float64Array, Int32Array, Number, Object, Reflect, Symbol,
    Uint8Array, Uint8ClampedArray, Uint16Array,
};
use wasm_bindgen::{JsCast, JsValue};

/// The typed array that carries `values` in JS (a copy).
pub fn values_to_js(values: &Values) -> JsValue {
    match values {
        Values::Float32(v) => Float32Array::from(v.as_slice()).into(),
        Values::Float16(v) => Uint16Array::from(v.as_slice()).into(),
        Values::Int64(v) => BigInt64Array::from(v.as_slice()).into(),
        Values::Int32(v) => Int32Array::from(v.as_slice()).into(),
        Values::Uint8(v) => Uint8Array::from(v.as_slice()).into(),
        Values::Bool(v) => {
            let bytes: Vec<u8> = v.iter().map(|&b| u8::from(b)).collect();
            Uint8Array::from(bytes.as_slice()).into()
        }
        Values::String(v) => v.iter().map(|s| JsValue::from_str(s)).collect::<Array>().into(),
    }
}

/// A tensor as the JS object `{ name, dtype, dims: number[], data: TypedArray }` (the data
/// copied into a typed array of the dtype's kind; see the module's table).
pub fn tensor_to_js(name: &str, t: &HostTensor) -> JsValue {
    let obj = Object::new();
    let dims: Array = t.dims.iter().map(|&d| JsValue::from_f64(d as f64)).collect();
    // Setting a property on a fresh plain object cannot fail.
    let _ = Reflect::set(&obj, &"name".into(), &name.into());
    let _ = Reflect::set(&obj, &"dtype".into(), &t.dtype().as_str().into());
    let _ = Reflect::set(&obj, &"dims".into(), &dims);
    let _ = Reflect::set(&obj, &"data".into(), &values_to_js(&t.values));
    obj.into()
}

/// Every tensor of `map` as [`tensor_to_js`] gives it, in name order.
pub fn tensors_to_js(map: &TensorMap) -> Array {
    map.iter().map(|(name, t)| tensor_to_js(name, t)).collect()
}

/// Read a JS tensor `{ name, dtype, dims, data }`: `name` a string, `dtype` a brasa dtype
/// name (`"float32"`, …), `dims` an Array of non-negative integers, `data` the typed array
/// of the dtype (see the module's table) holding exactly the product of `dims` elements.
/// The data is copied. Errors name the tensor and what is wrong with it.
pub fn tensor_from_js(value: &JsValue) -> Result<(String, HostTensor), String> {
    if !value.is_object() {
        return Err(format!(
            "a tensor must be an object {{ name, dtype, dims, data }}, got {}",
            describe(value)
        ));
    }
    let name = get(value, "name", "a tensor")?;
    let name = name
        .as_string()
        .ok_or_else(|| format!("a tensor's `name` must be a string, got {}", describe(&name)))?;
    let tensor = tensor_fields(&name, value)?;
    Ok((name, tensor))
}

/// Read named tensors: an Array of `{ name, dtype, dims, data }` (see [`tensor_from_js`]),
/// or a plain object mapping each name to `{ dtype, dims, data }` (onnxruntime-web's feeds
/// style; a `name` inside is ignored). A name given twice is an error.
pub fn tensors_from_js(array_or_object: &JsValue) -> Result<TensorMap, String> {
    let mut map = TensorMap::new();
    let mut insert = |name: String, tensor: HostTensor| {
        if map.contains_key(&name) {
            return Err(format!("tensor `{name}` is given twice"));
        }
        map.insert(name, tensor);
        Ok(())
    };
    if Array::is_array(array_or_object) {
        let array: &Array = array_or_object.unchecked_ref();
        for item in array.iter() {
            let (name, tensor) = tensor_from_js(&item)?;
            insert(name, tensor)?;
        }
    } else if array_or_object.is_object() && !is_typed_array(array_or_object) {
        let object: &Object = array_or_object.unchecked_ref();
        for entry in Object::entries(object).iter() {
            let entry: Array = entry.unchecked_into();
            let name = entry.get(0).as_string().unwrap_or_default();
            let tensor = tensor_fields(&name, &entry.get(1))?;
            insert(name, tensor)?;
        }
    } else {
        return Err(format!(
            "tensors must be an Array of {{ name, dtype, dims, data }} (or an object of them by name), got {}",
            describe(array_or_object)
        ));
    }
    Ok(map)
}

/// `value[key]`; a throwing getter or proxy becomes an error instead of a JS exception.
fn get(value: &JsValue, key: &str, what: &str) -> Result<JsValue, String> {
    Reflect::get(value, &key.into()).map_err(|_| format!("{what}: reading `{key}` failed"))
}

/// The `{ dtype, dims, data }` of tensor `name`.
fn tensor_fields(name: &str, value: &JsValue) -> Result<HostTensor, String> {
    let what = format!("tensor `{name}`");
    if !value.is_object() {
        return Err(format!("{what} must be an object {{ dtype, dims, data }}, got {}", describe(value)));
    }
    let dtype = get(value, "dtype", &what)?;
    let dtype: DType = dtype
        .as_string()
        .ok_or_else(|| {
            format!("{what}: `dtype` must be a string such as \"float32\", got {}", describe(&dtype))
        })?
        .parse()
        .map_err(|e| format!("{what}: {e}"))?;
    let dims = dims_from_js(&what, &get(value, "dims", &what)?)?;
    let data = get(value, "data", &what)?;
    // Checked before copying, so a mismatch never costs a large allocation.
    let count = dims.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d));
    let len = data_length(&data);
    if let Some(len) = len
        && count != Some(len)
    {
        return Err(format!(
            "{what} has dims {dims:?} = {} elements, but its data holds {len}",
            count.map_or_else(|| "too many".to_string(), |c| c.to_string())
        ));
    }
    let values = values_from_js(&what, dtype, &data)?;
    Ok(HostTensor::new(dims, values))
}

/// `dims`: an Array of non-negative safe integers.
fn dims_from_js(what: &str, dims: &JsValue) -> Result<Vec<usize>, String> {
    if !Array::is_array(dims) {
        return Err(format!("{what}: `dims` must be an Array of sizes, got {}", describe(dims)));
    }
    let dims: &Array = dims.unchecked_ref();
    dims.iter()
        .enumerate()
        .map(|(axis, d)| {
            d.as_f64()
                .filter(|&x| x >= 0.0 && Number::is_safe_integer(&d))
                .and_then(|x| usize::try_from(x as u64).ok())
                .ok_or_else(|| {
                    format!(
                        "{what}: dims[{axis}] is {}; a size is a non-negative integer up to 2^53",
                        describe(&d)
                    )
                })
        })
        .collect()
}

/// Elements in a typed array or Array (`None` for anything else).
fn data_length(data: &JsValue) -> Option<usize> {
    macro_rules! length_of {
        ($($ty:ty),*) => {
            $(if let Some(a) = data.dyn_ref::<$ty>() {
                return Some(a.length() as usize);
            })*
        };
    }
    length_of!(
        Float32Array,
        Float64Array,
        Uint16Array,
        BigInt64Array,
        Int32Array,
        Uint8Array,
        Uint8ClampedArray,
        Array
    );
    None
}

/// `value` as an Array, if it is one.
fn as_array(value: &JsValue) -> Option<&Array> {
    Array::is_array(value).then(|| value.unchecked_ref::<Array>())
}

fn is_typed_array(value: &JsValue) -> bool {
    data_length(value).is_some() && !Array::is_array(value)
}

/// `data` of `dtype`, copied out of JS.
fn values_from_js(what: &str, dtype: DType, data: &JsValue) -> Result<Values, String> {
    let wrong =
        |accepted: &str| format!("{what} is {dtype}: `data` must be a {accepted}, got {}", describe(data));
    Ok(match dtype {
        DType::Float32 => {
            if let Some(a) = data.dyn_ref::<Float32Array>() {
                Values::Float32(a.to_vec())
            } else if let Some(a) = data.dyn_ref::<Float64Array>() {
                Values::Float32(a.to_vec().into_iter().map(|x| x as f32).collect())
            } else if let Some(a) = as_array(data) {
                let floats = a
                    .iter()
                    .enumerate()
                    .map(|(i, v)| {
                        v.as_f64()
                            .map(|x| x as f32)
                            .ok_or_else(|| format!("{what}: data[{i}] is {}, not a number", describe(&v)))
                    })
                    .collect::<Result<Vec<f32>, String>>()?;
                Values::Float32(floats)
            } else {
                return Err(wrong("Float32Array (or a Float64Array or an Array of numbers)"));
            }
        }
        DType::Float16 => match data.dyn_ref::<Uint16Array>() {
            Some(a) => Values::Float16(a.to_vec()),
            None => return Err(wrong("Uint16Array of float16 bits")),
        },
        DType::Int64 => match data.dyn_ref::<BigInt64Array>() {
            Some(a) => Values::Int64(a.to_vec()),
            None => return Err(wrong("BigInt64Array (e.g. BigInt64Array.from(ids, BigInt))")),
        },
        DType::Int32 => match data.dyn_ref::<Int32Array>() {
            Some(a) => Values::Int32(a.to_vec()),
            None => return Err(wrong("Int32Array")),
        },
        DType::Uint8 => {
            if let Some(a) = data.dyn_ref::<Uint8Array>() {
                Values::Uint8(a.to_vec())
            } else if let Some(a) = data.dyn_ref::<Uint8ClampedArray>() {
                Values::Uint8(a.to_vec())
            } else {
                return Err(wrong("Uint8Array (or a Uint8ClampedArray)"));
            }
        }
        DType::Bool => {
            if let Some(a) = data.dyn_ref::<Uint8Array>() {
                let bytes = a.to_vec();
                if let Some(i) = bytes.iter().position(|&b| b > 1) {
                    return Err(format!("{what}: data[{i}] is {}; bool data must be 0 or 1", bytes[i]));
                }
                Values::Bool(bytes.into_iter().map(|b| b == 1).collect())
            } else if let Some(a) = as_array(data) {
                let bools = a
                    .iter()
                    .enumerate()
                    .map(|(i, v)| {
                        v.as_bool()
                            .ok_or_else(|| format!("{what}: data[{i}] is {}, not a boolean", describe(&v)))
                    })
                    .collect::<Result<Vec<bool>, String>>()?;
                Values::Bool(bools)
            } else {
                return Err(wrong("Uint8Array of 0/1 (or an Array of booleans)"));
            }
        }
        DType::String => match as_array(data) {
            Some(a) => Values::String(
                a.iter()
                    .enumerate()
                    .map(|(i, v)| {
                        v.as_string()
                            .ok_or_else(|| format!("{what}: data[{i}] is {}, not a string", describe(&v)))
                    })
                    .collect::<Result<Vec<String>, String>>()?,
            ),
            None => return Err(wrong("Array of strings")),
        },
    })
}

/// What a JS value is, for error messages: `undefined`, `the string "x"`, `a Float64Array`.
fn describe(value: &JsValue) -> String {
    if value.is_undefined() {
        return "undefined".into();
    }
    if value.is_null() {
        return "null".into();
    }
    if let Some(s) = value.as_string() {
        let short: String = s.chars().take(40).collect();
        return format!("the string {short:?}");
    }
    if let Some(x) = value.as_f64() {
        return x.to_string();
    }
    if let Some(b) = value.as_bool() {
        return b.to_string();
    }
    if value.is_bigint() {
        return "a BigInt".into();
    }
    if Array::is_array(value) {
        return "an Array".into();
    }
    if value.is_object() {
        // Typed arrays (of any realm) carry their name as `Symbol.toStringTag`.
        if let Some(tag) = Reflect::get(value, &Symbol::to_string_tag()).ok().and_then(|t| t.as_string()) {
            return format!("a {tag}");
        }
        return "an object".into();
    }
    value.js_typeof().as_string().unwrap_or_else(|| "a value".into())
}
